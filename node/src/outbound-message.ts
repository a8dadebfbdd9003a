import {
  deliveredType,
  encodeDelivered,
  type Flavor,
  type LegacyDirectMessage,
  type MessageFrame,
} from '@chat/shared';

/**
 * One message on its way to the receiver's sessions: the frame, and its text per client flavor, encoded
 * the first time a session of that flavor needs it (a message to five v1 tabs is serialised once).
 */
export class OutboundMessage {
  readonly frame: MessageFrame | LegacyDirectMessage;
  #v1: string | undefined;
  #seed: string | undefined;

  constructor(frame: MessageFrame | LegacyDirectMessage) {
    this.frame = frame;
  }

  encoded(flavor: Flavor): string {
    if (flavor === 'v1') return (this.#v1 ??= encodeDelivered(this.frame, 'v1'));
    return (this.#seed ??= encodeDelivered(this.frame, 'seed'));
  }

  frameType(flavor: Flavor): 'message' | 'legacy' {
    return deliveredType(this.frame, flavor);
  }
}
