'use strict';
// The per-peer bookkeeping of the CoAP endpoint: keys, inline slots and their maps.
const assert = require('node:assert/strict');
const { PeerState, peerKey } = require('../dist/lib/coap/peer');

const exchange = (messageId, tokenKey) => ({ messageId, tokenKey });

describe('peer state', () => {
  it('keys IPv4 peers by number and everything else by text, one key per address and port', () => {
    assert.equal(typeof peerKey('127.0.0.1', 5683), 'number');
    assert.equal(peerKey('127.0.0.1', 5683), peerKey('127.0.0.1', 5683));
    const keys = [peerKey('127.0.0.1', 5683), peerKey('127.0.0.1', 5684), peerKey('127.0.0.2', 5683), peerKey('10.0.0.1', 0), peerKey('255.255.255.255', 65535)];
    assert.equal(new Set(keys).size, keys.length);
    for (const address of ['::1', '::ffff:127.0.0.1', '1.2.3', '1.2.3.4.5', '1.2.3.256', '1..3.4', 'a.b.c.d', '1234.1.1.1']) {
      assert.equal(peerKey(address, 5683), `${address}:5683`, address);
    }
  });

  it('keeps one exchange inline and more in maps, found by message id and by token until untracked', () => {
    const peer = new PeerState('127.0.0.1', 5683);
    const first = exchange(1, 'aa');
    const second = exchange(2, 'bb');
    const ackOnly = exchange(3, 'cc');
    peer.track(first, true);
    peer.track(second, true);
    peer.track(ackOnly, false);
    assert.equal(peer.exchangeById(1), first);
    assert.equal(peer.exchangeById(2), second);
    assert.equal(peer.exchangeById(3), ackOnly);
    assert.equal(peer.exchangeByToken('bb'), second);
    assert.equal(peer.exchangeByToken('cc'), undefined);
    assert.deepEqual(new Set(peer.exchanges()), new Set([first, second, ackOnly]));
    peer.untrackId(first); // acknowledged: a separate response follows, by token
    assert.equal(peer.exchangeById(1), undefined);
    assert.equal(peer.exchangeByToken('aa'), first);
    for (const done of [first, second, ackOnly]) peer.untrack(done);
    assert.deepEqual(peer.exchanges(), []);
    assert.equal(peer.exchangeByToken('bb'), undefined);
    assert.equal(peer.isIdle(), true);
  });

  it('keeps one observer inline and more in a map, and is not idle while it has any', () => {
    const peer = new PeerState('127.0.0.1', 5683);
    const [a, b, c] = [{ notified() {} }, { notified() {} }, { notified() {} }];
    peer.addObserver('01', a);
    peer.addObserver('02', b);
    peer.addObserver('03', c);
    assert.deepEqual(['01', '02', '03', '04'].map((token) => peer.observer(token)), [a, b, c, undefined]);
    assert.equal(peer.removeObserver('01'), a);
    assert.equal(peer.observer('01'), undefined);
    assert.equal(peer.observer('03'), c);
    assert.equal(peer.isIdle(), false);
    peer.removeObserver('02');
    peer.removeObserver('03');
    assert.equal(peer.removeObserver('03'), undefined);
    assert.equal(peer.isIdle(), true);
  });

  it('repeats the answer to a duplicate from its compact copy', () => {
    const peer = new PeerState('127.0.0.1', 5683);
    const answer = Buffer.from([0x60, 0x41, 0x12, 0x34, 0xff, 0x80, 0x00]);
    peer.remember(0x1234, answer, 64);
    peer.remember(0x1235, null, 64);
    assert.deepEqual(peer.seen(0x1234), answer);
    assert.equal(peer.seen(0x1235), null);
    assert.equal(peer.seen(0x1236), undefined);
  });
});
