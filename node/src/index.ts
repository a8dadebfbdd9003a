export { createChatNode, type ChatNode, type ChatNodeDeps, type NodeConfig } from './chat-node.js';
export { KafkaBus, newEpoch, type KafkaBusOptions } from './bus/kafka-bus.js';
export { MemoryBus, MemoryBusHub } from './bus/memory-bus.js';
export type {
  BusHandlers,
  ChatBus,
  DirectoryBus,
  DirectoryHandlers,
  MessageBus,
  MessageHandlers,
  MessagePosition,
  PresenceUpdate,
} from './bus/types.js';
export { NodeMetrics } from './metrics.js';
export { SendDedup, type SendAnswer } from './send-dedup.js';
