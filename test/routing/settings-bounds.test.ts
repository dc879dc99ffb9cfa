// Issue 25 items 8 and 10: durations are bounded (annotations fall back with a Problem, the config
// file names the field) and Problems quote only a short part of a value. Only APIs that existed at
// filing are used, so this file shows the old behaviour failing.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import { buildRouteTable, DEFAULT_CONVENTIONS } from '../../src/routing/build.ts';
import { DEFAULT_SETTINGS, parseDuration, parseSettings } from '../../src/routing/settings.ts';
import { projectRecord } from '../support/records.ts';

describe('issue 25 item 8: every duration is bounded', () => {
  it('parseDuration refuses what is outside its bounds, and anything past a day by default', () => {
    assert.throws(() => parseDuration('1000000h'), /at most 24h/);
    assert.throws(() => parseDuration('597h'), /at most 24h/);
    assert.throws(() => parseDuration(`${'9'.repeat(400)}s`), /at most 24h/);
    assert.equal(parseDuration('24h'), 86_400_000);
  });

  it('annotations outside the bounds fall back to the default with a Problem', () => {
    const { settings, errors } = parseSettings({
      'health-timeout': '1000000h',
      'health-interval': '1ms',
      timeout: '30d',
    });
    assert.equal(settings.health.timeoutMs, DEFAULT_SETTINGS.health.timeoutMs);
    assert.equal(settings.health.intervalMs, DEFAULT_SETTINGS.health.intervalMs);
    assert.deepEqual(
      errors.map((e) => `${e.key}: ${e.reason}`),
      [
        'health-timeout: must be at most 24h',
        'health-interval: must be at least 100ms',
        'timeout: expected a duration such as 500ms, 1s or 2m',
      ],
    );
  });

  it('the config file names the field', () => {
    const issues = (yaml: string) => {
      try {
        parseConfig(yaml);
        return '';
      } catch (err) {
        return (err as Error).message;
      }
    };
    assert.match(
      issues('timeouts: { connect: 1000000h }'),
      /timeouts\.connect: "1000000h": must be at most 24h/,
    );
    assert.match(issues('timeouts: { drain: 1ms }'), /timeouts\.drain: "1ms": must be at least 10ms/);
    assert.match(
      issues('defaults: { health-interval: 1ms }'),
      /defaults\.health-interval: "1ms": must be at least 100ms/,
    );
    assert.match(
      issues('projects: { shop: { health-timeout: 1000000h, instances: { a: { http: 10.0.0.1:80 } } } }'),
      /projects\.shop\.health-timeout: "1000000h": must be at most 24h/,
    );
  });
});

describe('issue 25 item 10: Problems quote at most a short part of a value', () => {
  it('a 1 MB annotation makes a short Problem', () => {
    const big = 'x'.repeat(1 << 20);
    const t = buildRouteTable(
      [
        projectRecord('shop', 'default/shop', {
          settings: { 'health-path': big, [`x${big}`]: 'y', affinity: big },
        }),
      ],
      DEFAULT_CONVENTIONS,
      1,
    );
    assert.equal(t.problems.length, 3);
    for (const p of t.problems) {
      assert.ok(p.message.length < 700, `${p.message.length} characters`);
      assert.ok((p.field ?? '').length < 200);
    }
    assert.match(t.problems[0].message, /\.\.\. \(1048576 characters\)/);
  });
});
