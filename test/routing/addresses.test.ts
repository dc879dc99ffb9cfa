// Issue 25 item 9 (and issue 20 item 5): which endpoint addresses routing refuses, as a pure function.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type AddressPolicy,
  classify,
  DEFAULT_ADDRESS_POLICY,
  refusal,
} from '../../src/routing/addresses.ts';

describe('endpoint address policy', () => {
  it('classifies IPv4, IPv6 (mapped forms too) and names', () => {
    const cases: [string, string][] = [
      ['127.0.0.1', 'loopback'],
      ['127.255.3.4', 'loopback'],
      ['::1', 'loopback'],
      ['0:0:0:0:0:0:0:1', 'loopback'],
      ['::ffff:127.0.0.1', 'loopback'],
      ['localhost', 'loopback'],
      ['0.0.0.0', 'unspecified'],
      ['0.1.2.3', 'unspecified'],
      ['::', 'unspecified'],
      ['169.254.169.254', 'link-local'],
      ['fe80::1', 'link-local'],
      ['::ffff:169.254.169.254', 'link-local'],
      ['224.0.0.1', 'not-unicast'],
      ['255.255.255.255', 'not-unicast'],
      ['ff02::1', 'not-unicast'],
      ['10.0.0.1', 'unicast'],
      ['169.253.1.1', 'unicast'],
      ['2001:db8::1', 'unicast'],
      ['shop.internal', 'name'],
    ];
    for (const [host, cls] of cases) assert.equal(classify(host), cls, host);
  });

  it('from Kubernetes: loopback (unless allowed), link-local, unspecified, multicast and names are refused', () => {
    for (const host of [
      '127.0.0.1',
      '::1',
      '169.254.169.254',
      'fe80::1',
      '0.0.0.0',
      '::',
      '224.0.0.1',
      'example.com',
    ])
      assert.ok(refusal(host, 80, false), host);
    assert.equal(refusal('10.1.2.3', 80, false), undefined);
    const local: AddressPolicy = { ...DEFAULT_ADDRESS_POLICY, allowLoopback: true };
    assert.equal(refusal('127.0.0.1', 80, false, local), undefined);
    assert.ok(refusal('169.254.169.254', 80, false, local), 'allow-loopback is only loopback');
  });

  it('from the config file: only unspecified addresses and Wharf itself are refused', () => {
    for (const host of ['127.0.0.1', '169.254.1.1', 'localhost', 'shop.internal', '10.0.0.1'])
      assert.equal(refusal(host, 80, true), undefined, host);
    assert.ok(refusal('0.0.0.0', 80, true));
  });

  it("Wharf's own listeners, whatever the source; one on every address covers loopback and this machine", () => {
    const policy: AddressPolicy = {
      self: [
        { name: 'proxy', host: '0.0.0.0', port: 8080 },
        { name: 'admin', host: '127.0.0.1', port: 9901 },
      ],
      localHosts: ['127.0.0.1', '10.9.9.9', '::1'],
      allowLoopback: true,
    };
    assert.match(refusal('127.0.0.1', 9901, true, policy)!, /own admin listener/);
    assert.match(refusal('localhost', 9901, true, policy)!, /own admin listener/);
    assert.match(refusal('127.0.0.1', 9901, false, policy)!, /own admin listener/);
    assert.equal(
      refusal('127.0.0.2', 9901, true, policy),
      undefined,
      'the admin listener is on 127.0.0.1 only',
    );
    for (const host of ['127.0.0.1', '127.0.0.2', '10.9.9.9', '::1', '0.0.0.0'])
      assert.match(refusal(host, 8080, true, policy)!, /own proxy listener/, host);
    assert.equal(refusal('10.0.0.1', 8080, false, policy), undefined, 'another machine on the same port');
  });
});
