/**
 * Prompt tokens for a task: the model's chat template when the tokenizer has one (a string prompt
 * becomes one user message), else the plain text (messages joined by blank lines) after BOS.
 * Rollouts continue from the raw token context, so this is the only templating that happens.
 */
import { ArpoError, describeError } from "../errors.ts";
import type { ChatMessage, Task } from "../plugin/contracts.ts";
import type { TokenizerLike } from "../model/tokenizer.ts";

export function renderPrompt(
  task: Task,
  tokenizer: TokenizerLike,
): { text: string; tokens: number[] } {
  const messages: ChatMessage[] = typeof task.prompt === "string"
    ? [{ role: "user", content: task.prompt }]
    : task.prompt;
  if (messages.length === 0) {
    throw new ArpoError(`task "${task.id}": the prompt has no messages.`);
  }
  if (tokenizer.applyChatTemplate) {
    let text: string;
    try {
      text = tokenizer.applyChatTemplate(messages, true);
    } catch (e) {
      throw new ArpoError(
        `task "${task.id}": the chat template failed to render the prompt: ${describeError(e)}`,
        { cause: e },
      );
    }
    return { text, tokens: tokenizer.encode(text) };
  }
  const text = typeof task.prompt === "string"
    ? task.prompt
    : messages.map((m) => m.content).join("\n\n") + "\n";
  const tokens = tokenizer.encode(text);
  if (tokenizer.bosTokenId !== undefined) tokens.unshift(tokenizer.bosTokenId);
  return { text, tokens };
}
