// The ChatBus contract on the in-process bus (the single-machine default and the node's unit-test seam).
import { MemoryBusHub } from '@chat/node';
import { busContractSuite } from './contract.js';

busContractSuite('in-process bus', {
  createBackend(t) {
    const hub = new MemoryBusHub();
    return Promise.resolve({
      connect(nodeId) {
        const bus = hub.connect(nodeId);
        t.after(() => bus.stop());
        return bus;
      },
      setAvailable(available) {
        hub.available = available;
      },
    });
  },
  deliveryTimeoutMs: 2000,
});
