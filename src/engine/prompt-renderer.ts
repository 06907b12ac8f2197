import {
  type ChatHistoryItem,
  type ChatModelResponse,
  type ChatModelSegment,
  type ChatWrapper,
  type LlamaModel,
  LlamaText,
  resolveChatWrapper,
} from "node-llama-cpp";
import type { Prompt, ReplyStart } from "./types.js";

export type PromptFormat = "auto" | "chat" | "raw";

/**
 * Turns a prompt into the tokens the model sees. Chat turns go through the model's own template
 * (node-llama-cpp resolves the GGUF's Jinja template or a known wrapper); models without a template
 * (stories260K) get raw completion, with chat turns joined by blank lines.
 */
export class PromptRenderer {
  readonly chatWrapper: ChatWrapper | null;

  constructor(private readonly model: LlamaModel) {
    const template = model.fileInfo.metadata?.tokenizer?.chat_template;
    this.chatWrapper = template ? resolveChatWrapper(model) : null;
  }

  get hasChatTemplate(): boolean {
    return this.chatWrapper != null;
  }

  private useChat(format: PromptFormat): boolean {
    if (format === "raw") return false;
    if (format === "chat" && !this.chatWrapper) {
      throw new Error("the model has no chat template; use raw prompts (format: raw)");
    }
    return this.chatWrapper != null;
  }

  render(
    prompt: Prompt,
    format: PromptFormat = "auto",
    reply?: ReplyStart,
  ): { text: LlamaText; stops: string[] } {
    if (!this.useChat(format)) {
      const text = typeof prompt === "string" ? prompt : prompt.map((t) => t.content).join("\n\n");
      return { text: LlamaText(reply?.prefix ? `${text}\n\n${reply.prefix}` : text), stops: [] };
    }
    const turns = typeof prompt === "string" ? [{ role: "user" as const, content: prompt }] : prompt;
    const chatHistory: ChatHistoryItem[] = turns.map((t) =>
      t.role === "system"
        ? { type: "system", text: t.content }
        : t.role === "user"
          ? { type: "user", text: t.content }
          : { type: "model", response: [t.content] },
    );
    chatHistory.push({ type: "model", response: this.replyStart(reply) });
    const state = this.chatWrapper!.generateContextState({ chatHistory });
    // Triggers made of special tokens are end-of-generation tokens already; keep the plain-text ones.
    const stops = state.stopGenerationTriggers
      .filter((t) => t.values.length > 0 && t.values.every((v) => typeof v === "string"))
      .map((t) => t.toString());
    return { text: state.contextText, stops };
  }

  /**
   * The reply being generated, as node-llama-cpp continues it: text already written, after a closed empty
   * thought segment when asked and the template has thought segments (the wrapper renders it with its own
   * markers; Qwen 3's template then puts a blank line before the answer).
   */
  private replyStart(reply: ReplyStart | undefined): ChatModelResponse["response"] {
    const closed = reply?.closeThinking === true && this.chatWrapper?.settings.segments?.thought != null;
    const prefix = reply?.prefix ?? "";
    if (!closed) return prefix ? [prefix] : [];
    const thought: ChatModelSegment = { type: "segment", segmentType: "thought", text: "", ended: true };
    return [thought, `\n\n${prefix}`];
  }

  tokenize(prompt: Prompt, format: PromptFormat = "auto", reply?: ReplyStart): number[] {
    return this.prepare(prompt, format, reply).tokens;
  }

  /** Tokens and plain-text stop triggers from one rendering (generation needs both). */
  prepare(
    prompt: Prompt,
    format: PromptFormat = "auto",
    reply?: ReplyStart,
  ): { tokens: number[]; stops: string[] } {
    const { text, stops } = this.render(prompt, format, reply);
    if (!this.useChat(format)) {
      const body = this.model.tokenize(text.toString(), false);
      const bos = this.model.tokens.bos;
      return {
        tokens: this.model.tokens.shouldPrependBosToken && bos != null ? [bos, ...body] : body,
        stops,
      };
    }
    return { tokens: text.tokenize(this.model.tokenizer), stops };
  }
}
