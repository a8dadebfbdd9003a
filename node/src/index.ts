export { createChatNode, type ChatNode, type ChatNodeDeps } from './chat-node.js';
