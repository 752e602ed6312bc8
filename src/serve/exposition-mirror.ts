import { bodyOf, FORMS, type Body, type Form } from "../metrics/exposition.ts";

/**
 * One publication of the exposition, as the main thread sends it to the scrape thread: every form as a list of
 * buffer numbers, and the bytes of the buffers the scrape thread has not been sent yet, packed into one
 * ArrayBuffer that is transferred, not copied. A publication changes a few chunks of sample lines, so this is
 * what changed, not the megabytes of the exposition.
 */
export interface MirrorUpdate {
  readonly forms: Readonly<Record<Form, readonly number[]>>;
  /** [number, offset in `packed`, length] of each buffer sent for the first time. */
  readonly added: readonly (readonly [number, number, number])[];
  readonly packed: ArrayBuffer;
}

/**
 * The main thread's side: numbers each buffer the first time it is sent. A buffer that no form holds any more is
 * forgotten, here and by the receiver, by the same rule, so both sides always agree on what a number means.
 */
export class MirrorSender {
  #numbers = new Map<Buffer, number>();
  #next = 1;

  /** The update that brings a receiver holding the previous update's buffers to `forms`. */
  update(forms: Readonly<Record<Form, readonly Buffer[]>>): MirrorUpdate {
    const numbers = new Map<Buffer, number>();
    const fresh: [number, Buffer][] = [];
    const lists = {} as Record<Form, number[]>;
    for (const form of FORMS) {
      lists[form] = forms[form].map((b) => {
        let n = numbers.get(b);
        if (n === undefined) {
          n = this.#numbers.get(b);
          if (n === undefined) {
            n = this.#next++;
            fresh.push([n, b]);
          }
          numbers.set(b, n);
        }
        return n;
      });
    }
    this.#numbers = numbers;
    // Unpooled, so that transferring it detaches nothing else: Buffer.concat may take from Node's shared pool.
    const packed = Buffer.allocUnsafeSlow(fresh.reduce((sum, [, b]) => sum + b.length, 0));
    const added: [number, number, number][] = [];
    let offset = 0;
    for (const [n, b] of fresh) {
      b.copy(packed, offset);
      added.push([n, offset, b.length]);
      offset += b.length;
    }
    return { forms: lists, added, packed: packed.buffer };
  }
}

/** The scrape thread's side: the buffers it was sent, and each form's body made of them. */
export class MirrorReceiver {
  #buffers = new Map<number, Buffer>();
  #forms: Partial<Record<Form, Buffer[]>> = {};
  #bodies = new Map<Form, Body>();

  /** True once the first update has arrived. */
  get ready(): boolean {
    return this.#forms.text !== undefined;
  }

  /** Applies an update; throws when it names a buffer that was never sent (the two sides disagree). */
  apply(update: MirrorUpdate): void {
    const known = this.#buffers;
    for (const [n, offset, length] of update.added) known.set(n, Buffer.from(update.packed, offset, length));
    const buffers = new Map<number, Buffer>();
    const forms: Partial<Record<Form, Buffer[]>> = {};
    for (const form of FORMS) {
      forms[form] = update.forms[form].map((n) => {
        const b = known.get(n);
        if (b === undefined) throw new Error(`exposition update names buffer ${n}, which was never sent`);
        buffers.set(n, b);
        return b;
      });
    }
    this.#buffers = buffers;
    this.#forms = forms;
    this.#bodies = new Map();
  }

  /**
   * The latest body in one form. As on the main thread, a compressed form is served as one buffer: its gzip
   * members are joined here, on the scrape thread, the first time it is asked for after an update.
   */
  body(form: Form): Body {
    let body = this.#bodies.get(form);
    if (body) return body;
    const parts = this.#forms[form];
    if (parts === undefined) throw new Error("no exposition received yet");
    body = bodyOf(form, parts);
    this.#bodies.set(form, body);
    return body;
  }
}
