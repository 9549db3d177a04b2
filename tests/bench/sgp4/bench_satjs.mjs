// satellite.js side of the SGP4 benchmark: same catalogue, same steps.
// usage: node bench_satjs.mjs CATALOGUE START_ISO STEPS STEP_S
import { readFileSync } from 'node:fs';
import * as satellite from 'satellite.js';

const [file, startIso, stepsS, stepS] = process.argv.slice(2);
const steps = parseInt(stepsS, 10);
const step = parseFloat(stepS);
const lines = readFileSync(file, 'utf8').split('\n').map((l) => l.trimEnd()).filter((l) => l);
const recs = [];
for (let i = 0; i < lines.length; i++) {
  if (lines[i].startsWith('1 ') && i + 1 < lines.length && lines[i + 1].startsWith('2 ')) {
    recs.push(satellite.twoline2satrec(lines[i], lines[i + 1]));
    i++;
  }
}
const start = new Date(startIso);
const startJd = start.getTime() / 86400000 + 2440587.5;

function run(label, body) {
  const t0 = process.hrtime.bigint();
  let sum = 0;
  let props = 0;
  for (let i = 0; i < recs.length; i++) {
    sum += body(recs[i]);
    props += steps;
    if (recs.length >= 10 && i % (recs.length / 10) === 0) {
      process.stderr.write(`\r  satellite.js ${label}: ${Math.round((i * 100) / recs.length)}%`);
    }
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stderr.write(`\r  satellite.js ${label}: 100%\n`);
  console.log(`${label} props ${props} seconds ${secs.toFixed(6)} rate ${(props / secs).toFixed(0)} checksum ${sum.toExponential(6)}`);
}

// sgp4(satrec, minutes since epoch): the bare propagator
run('sgp4', (rec) => {
  let s = 0;
  const off = (startJd - rec.jdsatepoch - (rec.jdsatepochF ?? 0)) * 1440.0;
  for (let k = 0; k < steps; k++) {
    const pv = satellite.sgp4(rec, off + (k * step) / 60.0);
    if (pv && pv.position) s += pv.position.x;
  }
  return s;
});
// propagate(satrec, Date): what applications call, with the time conversion
run('propagate', (rec) => {
  let s = 0;
  for (let k = 0; k < steps; k++) {
    const pv = satellite.propagate(rec, new Date(start.getTime() + k * step * 1000));
    if (pv && pv.position) s += pv.position.x;
  }
  return s;
});
