// dnsmasq's --all-servers: ask every healthy upstream at once. An upstream
// that is down is skipped (its health probe brings it back), unless all are.
import { healthy, type Strategy } from './strategy.js';

export const allStrategy: Strategy = {
  name: 'all',
  // No copy: the race only reads the list.
  first: (race) => healthy(race.upstreams),
  next: () => [],
  delay: () => -1,
};
