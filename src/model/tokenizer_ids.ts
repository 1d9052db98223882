/**
 * The stand-in for a tokenizer in a model directory that has none (a trainer's checkpoint folder,
 * a test model): token ids in and out, EOS ids from generation_config.json or config.json. Every
 * use that needs text is refused with an error naming the directory.
 */
import { ArpoError } from "../errors.ts";
import type { TokenizerLike } from "./tokenizer.ts";

export class TokenIdsOnly implements TokenizerLike {
  readonly kind = "none" as const;
  constructor(
    readonly vocabSize: number,
    readonly eosTokenIds: readonly number[],
    readonly dir: string,
    readonly bosTokenId?: number,
  ) {}

  #refuse(what: string): never {
    throw new ArpoError(
      `model directory ${this.dir} has no tokenizer (tokenizer.json): ${what} needs one; ` +
        `give token ids instead (--tokens 1,2,3) or add the tokenizer files`,
      { exitCode: 2 },
    );
  }

  encode(_text: string): number[] {
    this.#refuse("encoding text");
  }

  /** Ids as `[id]` (what `model generate` prints for ids without text). */
  decode(ids: readonly number[]): string {
    return ids.map((i) => `[${i}]`).join("");
  }
}
