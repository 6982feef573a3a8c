/**
 * POST /v1/chat/completions bodies → what the model needs, or a 400 naming the field at fault.
 *
 *   { model?, messages: [                                   system / developer messages first (joined):
 *       { role: 'system', content: '…' },                    they replace vicuna_v1's system message
 *       { role: 'user', content: [ { type: 'text', text: '…' },
 *                                  { type: 'image_url', image_url: { url: 'data:image/png;base64,…' } } ] },
 *       { role: 'assistant', content: '…' },                 earlier exchanges: user / assistant pairs
 *       { role: 'user', content: '…' } ],                    the question to answer comes last
 *     max_completion_tokens | max_tokens, temperature, top_p, seed, stop, stream, stream_options,
 *     top_k, repetition_penalty (llama.cpp's extensions) }
 *
 * Consecutive messages of one role are joined with "\n". One image per conversation: LLaVA puts it in
 * front of the first user message, and so does this server wherever the client put it. Fields this
 * server cannot honour (n > 1, tools, logprobs, penalties, JSON mode) are refused rather than ignored;
 * fields it does not know are ignored, as OpenAI's own server does with new client fields.
 */
import { IMAGE_PLACEHOLDER, type Turn } from '../llm/prompt.js';
import { badRequest } from './errors.js';

export interface ChatRequest {
  /** Earlier exchanges, then the question (`assistant` absent on the last turn). */
  turns: Turn[];
  /** Replaces the vicuna_v1 system message when the client sent one. */
  system?: string;
  /** The image_url.url of the one image part, and where it was. */
  image?: { url: string; param: string };
  /** Absent: whatever room the context leaves. */
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
  repetitionPenalty?: number;
  stop?: string[];
  stream: boolean;
  /** stream_options.include_usage: a last chunk with `usage` and no choices (OpenAI's streaming usage). */
  includeUsage: boolean;
}

const MAX_STOP_STRINGS = 4;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const typeName = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v);

/** A field that may be absent or null; otherwise `check` returns its value or throws. */
function optional<T>(body: Record<string, unknown>, name: string, check: (v: unknown, name: string) => T): T | undefined {
  const v = body[name];
  return v === undefined || v === null ? undefined : check(v, name);
}

function number(lo: number, hi: number, { integer = false, loOpen = false } = {}) {
  return (v: unknown, name: string): number => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw badRequest(name, `must be a number, got ${typeName(v)}`, 'invalid_type');
    if (integer && !Number.isSafeInteger(v)) throw badRequest(name, `must be an integer, got ${v}`);
    if (v > hi || (loOpen ? v <= lo : v < lo)) throw badRequest(name, `must be in ${loOpen ? '(' : '['}${lo}, ${hi}], got ${v}`);
    return v;
  };
}

function boolean(v: unknown, name: string): boolean {
  if (typeof v !== 'boolean') throw badRequest(name, `must be a boolean, got ${typeName(v)}`, 'invalid_type');
  return v;
}

function stopStrings(v: unknown, name: string): string[] {
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string')) {
    throw badRequest(name, `must be a string or an array of strings, got ${typeName(v)}`, 'invalid_type');
  }
  if (list.length > MAX_STOP_STRINGS) throw badRequest(name, `at most ${MAX_STOP_STRINGS} stop strings, got ${list.length}`);
  if (list.some((s) => s === '')) throw badRequest(name, 'stop strings must not be empty');
  return list as string[];
}

/** Refuses a field this server cannot honour unless it has its neutral value. */
function unsupported(body: Record<string, unknown>, name: string, neutral: (v: unknown) => boolean, why: string): void {
  const v = body[name];
  if (v !== undefined && v !== null && !neutral(v)) throw badRequest(name, `not supported by this server (${why})`, 'unsupported_parameter');
}

interface Message {
  role: 'system' | 'user' | 'assistant';
  text: string;
}

/** One message's text (its parts joined), and its image part if any. */
function readMessage(m: unknown, param: string, image: { found?: ChatRequest['image'] }): Message {
  if (!isObject(m)) throw badRequest(param, `must be an object with role and content, got ${typeName(m)}`, 'invalid_type');
  const role = m.role === 'developer' ? 'system' : m.role;
  if (role !== 'system' && role !== 'user' && role !== 'assistant') {
    throw badRequest(`${param}.role`, `must be 'system', 'developer', 'user' or 'assistant', got ${JSON.stringify(m.role)}`);
  }
  const content = m.content;
  if (typeof content === 'string') return { role, text: checkText(content, `${param}.content`) };
  if (!Array.isArray(content)) throw badRequest(`${param}.content`, `must be a string or an array of content parts, got ${typeName(content)}`, 'invalid_type');
  const texts: string[] = [];
  content.forEach((part, j) => {
    const at = `${param}.content[${j}]`;
    if (!isObject(part)) throw badRequest(at, `must be a content part object, got ${typeName(part)}`, 'invalid_type');
    if (part.type === 'text') {
      if (typeof part.text !== 'string') throw badRequest(`${at}.text`, `must be a string, got ${typeName(part.text)}`, 'invalid_type');
      texts.push(checkText(part.text, `${at}.text`));
    } else if (part.type === 'image_url') {
      if (role !== 'user') throw badRequest(at, `images can only be sent in user messages, not ${role}`);
      const url = isObject(part.image_url) ? part.image_url.url : undefined;
      if (typeof url !== 'string') throw badRequest(`${at}.image_url.url`, `must be a string (a data: URL), got ${typeName(url)}`, 'invalid_type');
      if (image.found) throw badRequest(at, `one image per conversation (this model takes one; the first is ${image.found.param})`, 'too_many_images');
      image.found = { url, param: `${at}.image_url.url` };
    } else {
      throw badRequest(`${at}.type`, `unsupported content part type ${JSON.stringify(part.type)}; use 'text' or 'image_url'`, 'unsupported_content');
    }
  });
  return { role, text: texts.join('\n') };
}

function checkText(text: string, param: string): string {
  // The prompt builder splits on "<image>": a literal one in the text would become a second image slot.
  if (text.includes(IMAGE_PLACEHOLDER)) throw badRequest(param, `must not contain '${IMAGE_PLACEHOLDER}' (send the image as an image_url part)`);
  return text;
}

/** Validates a chat completion body; throws ApiError 400 naming the first field at fault. */
export function parseChatRequest(body: unknown): ChatRequest {
  if (!isObject(body)) throw badRequest('body', `must be a JSON object, got ${typeName(body)}`, 'invalid_type');
  if (body.model !== undefined && typeof body.model !== 'string') throw badRequest('model', `must be a string, got ${typeName(body.model)}`, 'invalid_type');
  unsupported(body, 'n', (v) => v === 1, 'one choice per request');
  unsupported(body, 'logprobs', (v) => v === false, 'no log probabilities');
  unsupported(body, 'top_logprobs', (v) => v === 0, 'no log probabilities');
  unsupported(body, 'frequency_penalty', (v) => v === 0, 'use repetition_penalty');
  unsupported(body, 'presence_penalty', (v) => v === 0, 'use repetition_penalty');
  unsupported(body, 'logit_bias', (v) => isObject(v) && Object.keys(v).length === 0, 'no logit bias');
  unsupported(body, 'tools', (v) => Array.isArray(v) && v.length === 0, 'no tool calls');
  unsupported(body, 'functions', (v) => Array.isArray(v) && v.length === 0, 'no function calls');
  unsupported(body, 'response_format', (v) => isObject(v) && v.type === 'text', 'plain text answers only');

  // Messages: system first, then user / assistant alternating (runs of one role joined), ending with user.
  if (!Array.isArray(body.messages)) throw badRequest('messages', `must be an array of messages, got ${typeName(body.messages)}`, 'invalid_type');
  if (body.messages.length === 0) throw badRequest('messages', 'must contain at least one user message');
  const image: { found?: ChatRequest['image'] } = {};
  const messages = body.messages.map((m, i) => readMessage(m, `messages[${i}]`, image));
  const systems: string[] = [];
  let i = 0;
  for (; i < messages.length && messages[i].role === 'system'; i++) systems.push(messages[i].text);
  const runs: Message[] = [];
  for (; i < messages.length; i++) {
    const m = messages[i];
    if (m.role === 'system') throw badRequest(`messages[${i}].role`, 'system messages must come before the conversation (vicuna_v1 has one system message)');
    if (runs.length === 0 && m.role !== 'user') throw badRequest(`messages[${i}].role`, 'the conversation must start with a user message');
    const last = runs.at(-1);
    if (last?.role === m.role) last.text += `\n${m.text}`;
    else runs.push({ ...m });
  }
  if (runs.length === 0) throw badRequest('messages', 'must contain at least one user message');
  if (runs.at(-1)!.role !== 'user') throw badRequest('messages', 'the last message must be from the user (the model answers it)');
  const turns: Turn[] = [];
  for (let r = 0; r < runs.length; r += 2) turns.push(r + 1 < runs.length ? { user: runs[r].text, assistant: runs[r + 1].text } : { user: runs[r].text });

  const stream = optional(body, 'stream', boolean) ?? false;
  const streamOptions = body.stream_options;
  if (streamOptions !== undefined && streamOptions !== null && !isObject(streamOptions)) {
    throw badRequest('stream_options', `must be an object, got ${typeName(streamOptions)}`, 'invalid_type');
  }
  const includeUsage = isObject(streamOptions) ? (optional(streamOptions, 'include_usage', (v) => boolean(v, 'stream_options.include_usage')) ?? false) : false;
  if (includeUsage && !stream) throw badRequest('stream_options', 'only allowed with stream: true');

  const maxTokens = optional(body, 'max_completion_tokens', number(1, Number.MAX_SAFE_INTEGER, { integer: true })) ?? optional(body, 'max_tokens', number(1, Number.MAX_SAFE_INTEGER, { integer: true }));
  return {
    turns,
    system: systems.length ? systems.join('\n') : undefined,
    image: image.found,
    maxTokens,
    temperature: optional(body, 'temperature', number(0, 2)),
    topP: optional(body, 'top_p', number(0, 1, { loOpen: true })),
    topK: optional(body, 'top_k', number(0, Number.MAX_SAFE_INTEGER, { integer: true })),
    seed: optional(body, 'seed', number(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, { integer: true })),
    repetitionPenalty: optional(body, 'repetition_penalty', number(0, Number.MAX_VALUE, { loOpen: true })),
    stop: optional(body, 'stop', stopStrings),
    stream,
    includeUsage,
  };
}
