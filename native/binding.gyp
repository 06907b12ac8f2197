{
  # Built by native/build.mjs (the package's install script). GGML_LIB_DIR is the directory of
  # node-llama-cpp's prebuilt libggml-base.so / libggml.v0.4.0.so; linking those (rather than a copy
  # of ggml of our own) keeps a single ggml in the process, shared with node-llama-cpp.
  "variables": {
    "ggml_lib_dir%": "",
    "ggml_rpath%": ""
  },
  "targets": [
    {
      "target_name": "catrl_trainer",
      "sources": ["src/trainer.cpp"],
      "include_dirs": [
        "<!@(node -p \"require('node-addon-api').include\")",
        "include"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "CATRL_GGML_EXPECTED=\"0.23.0\""],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions"],
      "libraries": [
        "-L<(ggml_lib_dir)",
        "-lggml-base",
        "-l:libggml.v0.4.0.so",
        "-Wl,-rpath,'$$ORIGIN/<(ggml_rpath)'"
      ]
    }
  ]
}
