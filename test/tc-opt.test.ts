// The OPT of a TC=1 reply (issue 14.12): raced's own UDP size, not an echo
// of what the client advertised.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Stub } from './helpers/stub.js';
import { startRaced, udpQuery } from './helpers/client.js';

test('a TC reply to a client advertising 4096 carries --edns-packet-max in its OPT', async () => {
  const up = await Stub.start({ bulk: 120 }); // ~2 KB: over every cap below
  try {
    for (const [cap, client, want] of [
      [1232, 4096, 1232],
      [1400, 4096, 1400],
      [1400, 1300, 1300], // a client asking for less is sent no more than it asked
    ] as const) {
      const r = await startRaced([up.label], { ednsPacketMax: cap });
      try {
        const { raw, packet } = await udpQuery(r.port, 'big.example', { edns: client });
        assert.ok((raw[2]! & 0x02) !== 0, 'TC set');
        const opt = packet.additionals!.find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
        assert.equal(opt?.udpPayloadSize, want, `cap ${cap}, client ${client}`);
      } finally {
        await r.close();
      }
    }
  } finally {
    await up.close();
  }
});
