import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, parseConfig } from '../../src/config/load.ts';

const issues = (text: string, over = {}) => {
  try {
    parseConfig(text, 't', over);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.join('\n');
    throw err;
  }
  return '';
};

describe('config: kubernetes section and flags', () => {
  test('absent means static only', () => {
    assert.equal(parseConfig('{}').kubernetes, undefined);
  });
  test('the section is read', () => {
    const c = parseConfig(
      'kubernetes:\n  apiservers: [https://10.0.0.1:6443, https://10.0.0.2:6443]\n  token-file: /t\n  ca-file: /ca\n  namespaces: [a, b]\n',
    );
    assert.deepEqual(c.kubernetes, {
      inCluster: false,
      kubeconfig: undefined,
      contexts: undefined,
      apiservers: ['https://10.0.0.1:6443', 'https://10.0.0.2:6443'],
      tokenFile: '/t',
      caFile: '/ca',
      insecureSkipTlsVerify: false,
      namespaces: ['a', 'b'],
      allowLoopback: false,
      watchdogMs: 90_000,
    });
    const k = parseConfig('kubernetes: { kubeconfig: /k, context: "x,y" }').kubernetes!;
    assert.deepEqual(k.contexts, ['x', 'y']);
    assert.equal(parseConfig('kubernetes: { in-cluster: true }').kubernetes!.inCluster, true);
  });
  test('flags enable it and win over the file', () => {
    const c = parseConfig('kubernetes: { in-cluster: true, namespaces: [x] }', 't', {
      inCluster: false,
      apiservers: 'https://a:1,https://b:2',
      tokenFile: '/tok',
    });
    assert.equal(c.kubernetes!.inCluster, false);
    assert.deepEqual(c.kubernetes!.apiservers, ['https://a:1', 'https://b:2']);
    assert.deepEqual(c.kubernetes!.namespaces, ['x']);
    assert.equal(parseConfig('{}', 't', { kubeconfig: '/k', context: 'c' }).kubernetes!.kubeconfig, '/k');
  });
  test('errors name the field', () => {
    assert.match(issues('kubernetes: { bogus: 1 }'), /kubernetes: unknown key\(s\) "bogus"/);
    assert.match(issues('kubernetes: { apiservers: [ftp://x] }'), /kubernetes\.apiservers\.0/);
    assert.match(issues('kubernetes: { namespaces: [Bad] }'), /kubernetes\.namespaces\.0/);
    assert.match(issues('kubernetes: {}'), /set in-cluster, kubeconfig/);
    assert.match(issues('kubernetes: { in-cluster: true, kubeconfig: /k }'), /exclude each other/);
    assert.match(issues('{}', { apiservers: 'nope' }), /--apiserver: "nope": expected/);
    assert.match(
      issues('kubernetes: { in-cluster: true, watchdog: 500ms }'),
      /kubernetes\.watchdog: "500ms": must be at least 1s/,
    );
    assert.match(
      issues('kubernetes: { in-cluster: true, watchdog: 2h }'),
      /kubernetes\.watchdog: "2h": must be at most 1h/,
    );
  });
  test('allow-loopback and watchdog are read', () => {
    const k = parseConfig('kubernetes: { in-cluster: true, allow-loopback: true, watchdog: 30s }')
      .kubernetes!;
    assert.equal(k.allowLoopback, true);
    assert.equal(k.watchdogMs, 30_000);
  });
});
