/**
 * `npm run simulate`: a Raspberry Pi (or a house full of them) on the command line. Publishes
 * realistic sensor readings over MQTT to `{prefix}/sensors/{location}/{sensor_type}` in the
 * payload shape of CONTRACT section 1, for demos, for trying the flow, and as a load generator
 * (`--rate 5000`). See `--help`; the values come from ./simulator/house.ts.
 *
 * Exit codes: 0 done (every message acknowledged), 1 some publishes failed or stayed
 * unacknowledged, 2 bad options, 130 a second Ctrl-C.
 */
import mqtt from 'mqtt';
import { HELP, parseOptions, type SimOptions } from './simulator/options';
import { Simulator, type SimStats } from './simulator/runner';
import { redactUrl } from '../nodes/shared/redact';

function stamp(): string {
  return new Date().toISOString().slice(11, 19);
}

function log(line: string): void {
  process.stdout.write(`[simulate ${stamp()}] ${line}\n`);
}


export function summaryLine(reason: string, s: SimStats): string {
  const seconds = s.elapsedMs / 1000;
  const rate = seconds > 0 ? s.readings / seconds : 0;
  return (
    `done (${reason}): ${s.readings} readings in ${s.messages} messages (${s.bad} malformed), ` +
    `${s.acked} acknowledged, ${s.failed} failed, ${s.inflight} unacknowledged, ${s.skipped} skipped, ` +
    `${seconds.toFixed(2)} s, ${rate.toFixed(1)} readings/s`
  );
}

export function run(o: SimOptions): Promise<number> {
  const client = mqtt.connect(o.url, {
    clientId: o.clientId,
    username: o.username,
    password: o.password,
    clean: true,
    reconnectPeriod: 2000,
    connectTimeout: 10000,
  });
  const sim = new Simulator(o, {
    publish: (topic, payload, qos, done) => {
      client.publish(topic, payload, { qos }, (err) => done(err ?? undefined));
    },
    log,
  });

  let lastError = '';
  client.on('error', (err) => {
    // Once per distinct error: a broker that is down would repeat it every reconnect.
    if (err.message !== lastError) log(`broker ${redactUrl(o.url)}: ${err.message}`);
    lastError = err.message;
  });
  client.on('offline', () => {
    if (sim.started) log('broker connection lost; retrying (readings wait, late ones are skipped)');
  });
  client.on('connect', () => {
    lastError = '';
    if (sim.started) {
      log('reconnected');
      return;
    }
    const limits = [o.count !== undefined ? `${o.count} readings` : '', o.duration !== undefined ? `${o.duration} s` : ''].filter(Boolean).join(' or ');
    log(
      `connected to ${redactUrl(o.url)} as ${o.clientId}: ${sim.streams.length} sensors ` +
        `(${o.locations.join(', ')} × ${o.sensors.join(', ')}), ${o.rate} readings/s` +
        `${o.batch > 1 ? ` in arrays of ${o.batch}` : ''}, QoS ${o.qos}, seed ${o.seed}` +
        `${o.badEvery ? `, every ${o.badEvery}th message malformed` : ''}${limits ? `, stopping after ${limits}` : ''}; Ctrl-C stops`,
    );
    if (sim.sensorIntervalMs < 1) {
      log(
        `warning: at ${o.rate} readings/s each sensor reads every ${sim.sensorIntervalMs.toFixed(2)} ms: readings of one ` +
          'sensor will share a millisecond timestamp and the pipeline stores such duplicates once (add --locations)',
      );
    }
    sim.start();
  });

  let reason = 'count or duration reached';
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) {
      log(`${signal} again: quitting without waiting`);
      client.end(true);
      process.exit(130);
    }
    interrupted = true;
    reason = `${signal}`;
    if (sim.started) log(`${signal}: sending what is batched, waiting for acknowledgements (again to quit at once)`);
    void sim.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  return sim.finished.then(
    (stats) =>
      new Promise<number>((resolve) => {
        process.removeListener('SIGINT', onSignal);
        process.removeListener('SIGTERM', onSignal);
        // Everything acknowledged: a clean disconnect. Otherwise we waited long enough: close now.
        client.end(stats.inflight > 0, {}, () => {
          log(summaryLine(reason, stats));
          resolve(stats.failed > 0 || stats.inflight > 0 ? 1 : 0);
        });
      }),
  );
}

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const parsed = parseOptions(argv, env, -new Date().getTimezoneOffset());
  if (!parsed.ok) {
    if (parsed.help) {
      process.stdout.write(`${HELP}\n`);
      return 0;
    }
    process.stderr.write(`simulate: ${parsed.error}\n`);
    return 2;
  }
  return run(parsed.options);
}

if (require.main === module) {
  main(process.argv.slice(2), process.env).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`simulate: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
