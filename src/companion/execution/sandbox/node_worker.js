// A warm Node.js worker: one JSON request per stdin line, one JSON result per stdout line.
// It runs inside the same OS sandbox as the Python zygotes (namespaces, Landlock, seccomp); `vm`
// only gives each run a fresh global object and a CPU timeout. `vm` is NOT a security boundary,
// so a worker serves a single tenant and the service recycles it after any timeout or N runs.
'use strict';

const readline = require('node:readline');
const util = require('node:util');
const vm = require('node:vm');

const writeLine = (value) => process.stdout.write(JSON.stringify(value) + '\n');

function capture(limitBytes) {
  const out = [];
  const err = [];
  let size = 0;
  let over = false;
  const write = (buffer, args) => {
    const line = util.format(...args) + '\n';
    if (size + line.length > limitBytes) {
      buffer.push(line.slice(0, Math.max(0, limitBytes - size)));
      size = limitBytes;
      over = true;
      throw new RangeError('output limit exceeded');
    }
    size += line.length;
    buffer.push(line);
  };
  const console = Object.freeze({
    log: (...a) => write(out, a),
    info: (...a) => write(out, a),
    debug: (...a) => write(out, a),
    warn: (...a) => write(err, a),
    error: (...a) => write(err, a),
  });
  return { console, take: () => [out.join(''), err.join(''), over] };
}

function describe(thrown) {
  if (thrown !== null && typeof thrown === 'object') {
    return {
      name: String(thrown.name ?? 'Error'),
      value: String(thrown.message ?? ''),
      traceback: String(thrown.stack ?? ''),
    };
  }
  return { name: 'Error', value: String(thrown), traceback: '' };
}

function run(request) {
  const limits = request.limits;
  const { console, take } = capture(limits.max_output_bytes);
  const context = vm.createContext(
    { console, scriptArgs: request.args ?? [] },
    // Microtasks run inside the timeout too: `Promise.resolve().then(() => { for (;;); })`.
    { microtaskMode: 'afterEvaluate', codeGeneration: { strings: true, wasm: false } },
  );
  const cpuBefore = process.cpuUsage();
  const started = process.hrtime.bigint();
  let error = null;
  let limit = null;
  try {
    vm.runInContext(request.code, context, {
      filename: 'main.js',
      timeout: limits.cpu_time_ms,
      breakOnSigint: false,
    });
  } catch (thrown) {
    error = describe(thrown);
    if (thrown && thrown.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') limit = 'time';
  }
  const [stdout, stderr, over] = take();
  if (over) limit = 'output';
  const cpu = process.cpuUsage(cpuBefore);
  return {
    id: request.id,
    exit_code: error === null ? 0 : 1,
    stdout,
    stderr,
    error: error === null ? '' : JSON.stringify({ ...error, limit }),
    limit,
    wall_ms: Number(process.hrtime.bigint() - started) / 1e6,
    cpu_ms: (cpu.user + cpu.system) / 1000,
    memory_bytes: process.resourceUsage().maxRSS * 1024, // getrusage: /proc is out of reach
  };
}

const lines = readline.createInterface({ input: process.stdin, terminal: false });
lines.on('line', (line) => {
  let request;
  try {
    request = JSON.parse(line);
  } catch {
    process.exit(2);
  }
  writeLine(run(request));
});
lines.on('close', () => process.exit(0));
writeLine({ ready: true, node: process.version });
