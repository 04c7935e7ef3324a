// The cost model's arithmetic (bench/cost.ts): an idle agent on the push channel, and a fleet's month.
import { describe, expect, it } from 'vitest';
import { costUsdPerAgentMonthIdle, deploymentMonthlyUsd, fleetMonthlyUsd, idleAgentMonthlyUsd, PRICES } from '../../bench/cost.ts';

describe('costUsdPerAgentMonthIdle', () => {
  it('adds up connection minutes, reconnects and periodic fetches, and meets the $0.05 target', () => {
    const c = costUsdPerAgentMonthIdle();
    expect(c.fetchesPerMonth).toBe(14_400); // 30 days, one fetch every 3 minutes
    // Worked by hand: 43,200 connection-minutes at $0.08/M; 60 messages at $1/M; 14,400 API requests at $1/M;
    // 28,830 Lambda requests at $0.2/M; 14,400 x (0.03 s x 0.5 GB + 0.005 s x 0.25 GB) + 30 x 0.005 x 0.25 GB-s at
    // $0.0000133334; 14,400 x 2.5 + 30 RRU at $0.25/M.
    expect(c.usdByService).toEqual({
      iotConnectivity: 0.003456,
      iotMessages: 0.00006,
      apiGateway: 0.0144,
      lambdaRequests: 0.005766,
      lambdaDuration: 0.003121,
      dynamoDb: 0.009008,
    });
    expect(c.usd).toBeCloseTo(0.0358, 4);
    expect(c.usd).toBeLessThanOrEqual(c.target);
  });

  it('is the fetch interval that dominates: every minute would miss the target, and long polls cost ~500 times more', () => {
    expect(costUsdPerAgentMonthIdle({ fetchEverySeconds: 60 }).usd).toBeGreaterThan(0.05);
    expect(idleAgentMonthlyUsd(20).usd / costUsdPerAgentMonthIdle().usd).toBeGreaterThan(300);
  });
});

describe('fleetMonthlyUsd', () => {
  it('counts a host agent and one agent per xPU, reboots per xPU, and the fixed deployment cost', () => {
    const f = fleetMonthlyUsd({ hosts: 1_000, xpusPerHost: 2, rebootsPerXpuPerMonth: 1, costUsdPerReboot: 0.0004189, alarms: 20 });
    expect(f.agents).toBe(3_000);
    expect(f.reboots).toBe(2_000);
    expect(f.idleUsd).toBeCloseTo(3_000 * 0.0358, 2);
    expect(f.rebootUsd).toBeCloseTo(0.84, 2);
    expect(f.fixedUsd).toBe(deploymentMonthlyUsd(20));
    expect(deploymentMonthlyUsd(20)).toBe(20 * PRICES.cloudWatchAlarmMonth + 3 + 1);
    expect(f.usd).toBeCloseTo(f.idleUsd + f.rebootUsd + f.fixedUsd, 2);
  });
});
