// What the fake provider answers, decided the same way for both wire formats and fully deterministic:
// a text echo, or a call of a tool the prompt names (or the one tool_choice forces), with arguments
// filled in from the tool's JSON schema; with Anthropic's thinking on, a signed thinking block before it.
import { createHash } from 'node:crypto';

export type Json = Record<string, unknown>;

export const isObj = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

/** A request reduced to what the reply depends on. */
export interface Ask {
  /** Every bit of prompt text, for token counts. */
  promptText: string;
  lastUserText: string;
  /** The text of the tool result the conversation ends with, if it does. */
  toolResult: string | undefined;
  tools: { name: string; schema: Json }[];
  toolMode: 'auto' | 'none' | 'required' | { name: string };
  maxTokens: number | undefined;
  stop: string[];
  /** Anthropic `thinking` is on: the answer starts with thinking. */
  thinking?: boolean;
}

/** What the fake thinks before answering: a thinking block, after a redacted one when the prompt asks. */
export interface FakeThinking {
  text: string;
  signature: string;
  /** `data` of a redacted_thinking block before it. */
  redacted?: string;
}

export type Plan = (
  | { kind: 'text'; words: string[]; finish: 'stop' | 'length' | 'stop_sequence'; stopSequence: string | null }
  | { kind: 'tool'; name: string; args: Json }
) & { thinking?: FakeThinking };

export interface Counts {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  /** Prompt tokens written to the prompt cache (Anthropic reports them; OpenAI does not). */
  cacheWriteTokens: number;
}

/** Put in a prompt, makes the fake report half the prompt as read from its prompt cache. */
export const CACHED_MARKER = '[fake:cached]';
/** Put in a prompt, makes the fake (Anthropic) report a quarter of the prompt as written to its prompt cache. */
export const CACHE_WRITE_MARKER = '[fake:cache-write]';
/** Put in a prompt with thinking on, makes the fake's answer start with a redacted_thinking block. */
export const REDACTED_THINKING_MARKER = '[fake:redacted-thinking]';

/** The signature of the fake's thinking text, checked when a thinking block comes back (as Anthropic does). */
export const thinkingSignature = (text: string): string => createHash('sha256').update(`fake-thinking\n${text}`).digest('base64');
/** The data of the fake's redacted thinking: anything else coming back is refused. */
export const REDACTED_THINKING_DATA = Buffer.from('fake-redacted-thinking').toString('base64');

export function planReply(ask: Ask): Plan {
  const plan = planAnswer(ask);
  if (ask.thinking !== true) return plan;
  const text = `Thinking about "${(ask.toolResult ?? ask.lastUserText).slice(0, 80)}" before answering.`;
  const thinking: FakeThinking = { text, signature: thinkingSignature(text) };
  if (ask.promptText.includes(REDACTED_THINKING_MARKER)) thinking.redacted = REDACTED_THINKING_DATA;
  return { ...plan, thinking };
}

function planAnswer(ask: Ask): Plan {
  if (ask.toolResult === undefined && ask.tools.length > 0 && ask.toolMode !== 'none') {
    const tool =
      typeof ask.toolMode === 'object'
        ? ask.tools.find((t) => t.name === (ask.toolMode as { name: string }).name)
        : ask.toolMode === 'required'
          ? ask.tools[0]
          : ask.tools.find((t) => ask.lastUserText.includes(t.name));
    if (tool !== undefined) return { kind: 'tool', name: tool.name, args: argsFromSchema(tool.schema) };
  }
  let text = ask.toolResult !== undefined ? `The tool returned: ${ask.toolResult}` : `Hello from the fake provider. You said: ${ask.lastUserText.slice(0, 200)}`;
  let finish: 'stop' | 'length' | 'stop_sequence' = 'stop';
  let stopSequence: string | null = null;
  for (const s of ask.stop) {
    const at = s === '' ? -1 : text.indexOf(s);
    if (at !== -1) {
      text = text.slice(0, at);
      finish = 'stop_sequence';
      stopSequence = s;
    }
  }
  let words: string[] = text.match(/\S+\s*/g) ?? [];
  if (ask.maxTokens !== undefined && words.length > ask.maxTokens) {
    words = words.slice(0, ask.maxTokens);
    finish = 'length';
    stopSequence = null;
  }
  return { kind: 'text', words, finish, stopSequence };
}

export function countTokens(ask: Ask, plan: Plan): Counts {
  const promptTokens = Math.max(1, Math.ceil(ask.promptText.length / 4));
  const answerTokens = plan.kind === 'text' ? plan.words.length : Math.ceil(JSON.stringify(plan.args).length / 4) + 1;
  // Anthropic counts thinking in output_tokens and does not report it apart.
  const completionTokens = answerTokens + (plan.thinking === undefined ? 0 : Math.ceil(plan.thinking.text.length / 4));
  const cachedTokens = ask.promptText.includes(CACHED_MARKER) ? Math.floor(promptTokens / 2) : 0;
  const cacheWriteTokens = ask.promptText.includes(CACHE_WRITE_MARKER) ? Math.floor(promptTokens / 4) : 0;
  return { promptTokens, completionTokens, cachedTokens, cacheWriteTokens };
}

/** A value for every property of a JSON schema: the first enum value, 1, true, [], nested objects, else 'fake'. */
export function argsFromSchema(schema: Json): Json {
  const out: Json = {};
  const props = (schema.properties ?? {}) as Record<string, Json>;
  for (const [name, p] of Object.entries(props)) out[name] = valueFor(p);
  return out;
}

function valueFor(p: Json): unknown {
  if (Array.isArray(p.enum) && p.enum.length > 0) return p.enum[0];
  switch (p.type) {
    case 'number':
    case 'integer':
      return 1;
    case 'boolean':
      return true;
    case 'array':
      return [];
    case 'object':
      return argsFromSchema(p);
    default:
      return 'fake';
  }
}

/** Splits tool arguments into pieces, as providers stream them. */
export function argumentPieces(args: Json): string[] {
  const text = JSON.stringify(args);
  const pieces: string[] = [];
  for (let i = 0; i < text.length; i += 12) pieces.push(text.slice(i, i + 12));
  return pieces;
}
