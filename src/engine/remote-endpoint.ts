import { UserError } from "../util/errors.js";

/**
 * A model flag names either a GGUF (a path, `hf:` or an https URL ending in `.gguf`, downloaded through
 * node-llama-cpp) or an OpenAI-compatible server's base URL (`http://host:8080/v1`).
 */

/** Environment variables holding the server's API key, first set wins; never a flag, never in run.json. */
export const API_KEY_ENV = ["CATRL_API_KEY", "OPENAI_API_KEY"] as const;

export type ApiKey = { value: string; from: (typeof API_KEY_ENV)[number] };

export type Endpoint = {
  /** The OpenAI-compatible API, ending in /v1 (`/v1/completions`, `/v1/models`). */
  base: string;
  /** The server itself (llama-server's /props, /tokenize, /apply-template; vLLM's /tokenize, /version). */
  root: string;
};

export function isEndpointUrl(spec: string): boolean {
  if (!/^https?:\/\//i.test(spec)) return false;
  try {
    return !new URL(spec).pathname.toLowerCase().endsWith(".gguf");
  } catch {
    return false;
  }
}

export function parseEndpoint(spec: string): Endpoint {
  let u: URL;
  try {
    u = new URL(spec);
  } catch {
    throw new UserError(
      `${spec}: not a URL (expected an OpenAI-compatible base URL such as http://host:8080/v1)`,
    );
  }
  if (u.protocol !== "http:" && u.protocol !== "https:")
    throw new UserError(`${spec}: only http and https servers are supported`);
  if (u.username || u.password)
    throw new UserError(
      `${spec}: put the API key in ${API_KEY_ENV[0]}, not in the URL (it would end up in run.json)`,
    );
  const path = u.pathname.replace(/\/+$/, "");
  const rootPath = path.endsWith("/v1") ? path.slice(0, -3) : path;
  const root = `${u.origin}${rootPath}`;
  return { base: `${root}/v1`, root };
}

export function apiKeyFromEnv(env: NodeJS.ProcessEnv = process.env): ApiKey | undefined {
  for (const name of API_KEY_ENV) {
    const value = env[name];
    if (value) return { value, from: name };
  }
  return undefined;
}
