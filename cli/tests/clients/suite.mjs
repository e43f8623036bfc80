#!/usr/bin/env node
// Real client libraries through the rpcmesh gateway, compared with the same libraries against
// anvil directly.
//
//   node suite.mjs <GATEWAY_HTTP_URL> <DIRECT_HTTP_URL> [GATEWAY_WS_URL | -]
//
// GATEWAY is provider A's rpcmesh gateway, DIRECT is the anvil node behind the mesh. The same
// scenario runs with viem and with ethers v6 against both and the answers are compared: reads,
// a signed transfer with its receipt, a contract deploy + transaction + eth_call + logs, JSON-RPC
// batches, error codes, and (when a WebSocket URL is given) a newHeads subscription.
//
// Prints one line of JSON (the checks run, with timings) and exits 0 when every check passed;
// on the first mismatch prints the summary so far plus the reason to stdout and a one-line
// message to stderr, and exits 1. Usage errors exit 2. With RPCMESH_TEST_CLIENTS_KEEP_GOING=1
// in the environment it records each failed check and goes on, then exits 1 (for diagnosis).
//
// Needs only the packages pinned in package-lock.json (`npm ci` in this directory).

import {
  ContractFunctionRevertedError,
  createPublicClient,
  createWalletClient,
  defineChain,
  http,
  parseAbi,
  parseAbiItem,
  webSocket,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { Contract, ContractFactory, JsonRpcProvider, Wallet, WebSocketProvider } from 'ethers';

// ---------------------------------------------------------------------------------------------
// Fixtures

const CHAIN_ID = 31337;
// anvil's default dev accounts 0 and 1 (public test mnemonic).
const PK0 = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
const ACCOUNT0 = '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266';
const ACCOUNT1 = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';

// A hand-assembled contract (no compiler at test time), equivalent to
//
//   event Stored(uint256 value);
//   uint256 x;
//   function store(uint256 v) { x = v; emit Stored(v); }
//   function retrieve() view returns (uint256) { return x; }
//   function fail() pure { revert("nope"); }
//
// Init code (11 bytes): PUSH1 0x94 DUP1 PUSH1 0x0b PUSH1 0 CODECOPY PUSH1 0 RETURN
// Runtime (148 bytes):
//   00 PUSH1 4 CALLDATASIZE LT PUSH1 0x2b JUMPI            ; calldata < 4 bytes -> revert
//   06 PUSH1 0 CALLDATALOAD PUSH1 0xe0 SHR                 ; selector
//   0b DUP1 PUSH4 0x6057361d EQ PUSH1 0x30 JUMPI           ; store(uint256)
//   14 DUP1 PUSH4 0x2e64cec1 EQ PUSH1 0x62 JUMPI           ; retrieve()
//   1d DUP1 PUSH4 0xa9cc4718 EQ PUSH1 0x6e JUMPI           ; fail()
//   26 ... 2b JUMPDEST PUSH1 0 DUP1 REVERT                  ; unknown selector: empty revert
//   30 JUMPDEST PUSH1 4 CALLDATALOAD DUP1 PUSH1 0 SSTORE PUSH1 0 MSTORE
//      PUSH32 keccak256("Stored(uint256)") PUSH1 0x20 PUSH1 0 LOG1 STOP
//   62 JUMPDEST PUSH1 0 SLOAD PUSH1 0 MSTORE PUSH1 0x20 PUSH1 0 RETURN
//   6e JUMPDEST mem = Error(string) selector ++ 0x20 ++ 4 ++ "nope"; PUSH1 0x64 PUSH1 0 REVERT
const RUNTIME =
  '0x60043610602b5760003560e01c80636057361d1460305780632e64cec1146062578063a9cc471814606e57' +
  '5b600080fd5b600435806000556000527fc6d8c0af6d21f291e7c359603aa97e0ed500f04db6e983b9fce75a' +
  '91c6b8da6b60206000a1005b60005460005260206000f35b6308c379a060e01b60005260206004526004602452' +
  '636e6f706560e01b60445260646000fd';
const BYTECODE = '0x609480600b6000396000f3' + RUNTIME.slice(2);
const ABI_HUMAN = [
  'event Stored(uint256 value)',
  'function store(uint256 v)',
  'function retrieve() view returns (uint256)',
  'function fail() pure',
];
const ABI = parseAbi(ABI_HUMAN);
const STORED = parseAbiItem('event Stored(uint256 value)');
const STORED_TOPIC = '0xc6d8c0af6d21f291e7c359603aa97e0ed500f04db6e983b9fce75a91c6b8da6b';
// eth_call data for fail() and the revert data it returns: Error("nope").
const FAIL_DATA = '0xa9cc4718';
const NOPE =
  '0x08c379a0' +
  '0000000000000000000000000000000000000000000000000000000000000020' +
  '0000000000000000000000000000000000000000000000000000000000000004' +
  '6e6f706500000000000000000000000000000000000000000000000000000000';

// Methods no node has: one in a namespace every provider serves, one in a namespace none does.
const UNKNOWN_METHODS = ['eth_noSuchMethod', 'foo_bar'];

const CHECK_TIMEOUT_MS = 30_000;
const WS_TIMEOUT_MS = 20_000;
const POLL_MS = 200;

// ---------------------------------------------------------------------------------------------
// Arguments

const [GATEWAY, DIRECT, WS_ARG] = process.argv.slice(2);
if (!GATEWAY || !DIRECT || !/^https?:\/\//.test(GATEWAY) || !/^https?:\/\//.test(DIRECT)) {
  process.stderr.write('usage: node suite.mjs <GATEWAY_HTTP_URL> <DIRECT_HTTP_URL> [GATEWAY_WS_URL | -]\n');
  process.exit(2);
}
const GATEWAY_WS = WS_ARG && WS_ARG !== '-' ? WS_ARG : null;
const DIRECT_WS = DIRECT.replace(/^http/, 'ws');
const ENDPOINTS = { gateway: GATEWAY, direct: DIRECT };

// ---------------------------------------------------------------------------------------------
// Reporting

const started = Date.now();
const checks = [];
const failures = [];
const KEEP_GOING = process.env.RPCMESH_TEST_CLIENTS_KEEP_GOING === '1';
let current = null;

class Mismatch extends Error {}

function summary(extra) {
  return JSON.stringify({
    ok: !extra,
    gateway: GATEWAY,
    direct: DIRECT,
    ws: GATEWAY_WS,
    ms: Date.now() - started,
    checks,
    ...extra,
  });
}

function describe(err) {
  return err instanceof Mismatch ? err.message : `${err?.name ?? 'Error'}: ${err?.shortMessage ?? err?.message ?? err}`;
}

function fail(check, err) {
  const reason = describe(err);
  process.stdout.write(summary({ failed: check, reason, failures }) + '\n');
  process.stderr.write(`FAIL ${check}: ${reason}\n`);
  if (!(err instanceof Mismatch) && err?.stack) process.stderr.write(`${err.stack}\n`);
  process.exit(1);
}

// A library or socket failing outside an awaited promise still fails the current check.
process.on('unhandledRejection', (e) => fail(current ?? 'suite', e));
process.on('uncaughtException', (e) => fail(current ?? 'suite', e));

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Mismatch(`${what}: no answer within ${ms / 1000} s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function check(name, fn, timeoutMs = CHECK_TIMEOUT_MS) {
  current = name;
  const t = Date.now();
  let note;
  try {
    note = await withTimeout(Promise.resolve().then(fn), timeoutMs, name);
  } catch (e) {
    if (!KEEP_GOING) fail(name, e);
    failures.push([name, describe(e)]);
    process.stderr.write(`FAIL ${name}: ${describe(e)}\n`);
    checks.push([name, 'FAIL', describe(e)]);
    current = null;
    return;
  }
  checks.push(note === undefined ? [name, Date.now() - t] : [name, Date.now() - t, note]);
  current = null;
}

function skip(name, why) {
  checks.push([name, 'skipped', why]);
}

// ---------------------------------------------------------------------------------------------
// Comparison helpers

// JSON with bigints as decimal strings; ethers objects serialise through their toJSON.
function canon(v) {
  return JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? `${x}n` : x));
}

function assert(cond, msg) {
  if (!cond) throw new Mismatch(msg);
}

function same(what, gateway, direct) {
  const g = canon(gateway);
  const d = canon(direct);
  if (g === d) return;
  // Show where they part: a little common context, then each side from there.
  let i = 0;
  while (i < g.length && i < d.length && g[i] === d[i]) i++;
  const from = Math.max(0, i - 120);
  const at = (x) => `${from > 0 ? '...' : ''}${x.slice(from, i + 300)}${x.length > i + 300 ? '...' : ''}`;
  throw new Mismatch(`${what} differs at character ${i}: gateway ${at(g)} vs direct ${at(d)}`);
}

function short(s, n = 600) {
  return s && s.length > n ? `${s.slice(0, n)}...` : s;
}

async function both(fn) {
  // Sequential, gateway first: the two sides share one chain and one sender.
  const gateway = await fn('gateway', ENDPOINTS.gateway);
  const direct = await fn('direct', ENDPOINTS.direct);
  return { gateway, direct };
}

async function expectThrow(what, fn) {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  throw new Mismatch(`${what}: expected an error, got a result`);
}

// ---------------------------------------------------------------------------------------------
// Raw JSON-RPC over fetch (library-independent)

async function post(url, body) {
  const resp = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await resp.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Mismatch(`${url} answered HTTP ${resp.status} with a body that is not JSON: ${short(text, 300)}`);
  }
  return { status: resp.status, json, servedBy: resp.headers.get('x-rpcmesh-served-by') };
}

async function rpc(url, method, params, id = 1) {
  const { json } = await post(url, { jsonrpc: '2.0', id, method, params });
  return json;
}

// ---------------------------------------------------------------------------------------------
// viem

const chain = defineChain({
  id: CHAIN_ID,
  name: 'anvil',
  nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
  rpcUrls: { default: { http: [DIRECT] } },
});
const account = privateKeyToAccount(PK0);

function viemClients(url, opts = {}) {
  // retryCount 0: a flaky answer must show, not be hidden by a library retry.
  const transport = http(url, { retryCount: 0, timeout: 20_000, ...opts });
  return {
    pub: createPublicClient({ chain, transport, pollingInterval: POLL_MS, cacheTime: 0 }),
    wallet: createWalletClient({ chain, transport, account, pollingInterval: POLL_MS, cacheTime: 0 }),
  };
}

// Names and JSON-RPC codes along a viem error's cause chain, plus the revert reason.
function viemError(e) {
  const names = [];
  const codes = [];
  let reason;
  let err = e;
  while (err) {
    if (err.name) names.push(err.name);
    if (typeof err.code === 'number') codes.push(err.code);
    if (err instanceof ContractFunctionRevertedError) reason = err.reason;
    err = err.cause;
  }
  return { names, codes, reason };
}

// The comparisons pin a block below the head: wait until the chain has a few.
async function waitForBlocks(min) {
  for (let i = 0; i < 100; i++) {
    const head = await rpc(DIRECT, 'eth_blockNumber', []);
    if (head.result && BigInt(head.result) >= BigInt(min)) return;
    await new Promise((res) => setTimeout(res, POLL_MS));
  }
  throw new Mismatch(`anvil at ${DIRECT} did not reach block ${min}`);
}

async function viemSuite() {
  const c = { gateway: viemClients(GATEWAY), direct: viemClients(DIRECT) };
  let pinned;

  await check('viem.chainId', async () => {
    const r = await both((side) => c[side].pub.getChainId());
    same('chainId', r.gateway, r.direct);
    assert(r.gateway === CHAIN_ID, `chainId ${r.gateway}, expected ${CHAIN_ID}`);
  });

  await check('viem.blockNumber', async () => {
    const r = await both((side) => c[side].pub.getBlockNumber());
    const gap = r.gateway > r.direct ? r.gateway - r.direct : r.direct - r.gateway;
    assert(gap <= 2n, `blockNumber: gateway ${r.gateway}, direct ${r.direct} (more than 2 apart)`);
    pinned = (r.gateway < r.direct ? r.gateway : r.direct) - 1n;
    return `${r.gateway}/${r.direct}`;
  });

  await check('viem.getBalance', async () => {
    const r = await both((side) => c[side].pub.getBalance({ address: ACCOUNT0, blockNumber: pinned }));
    same(`balance of account 0 at block ${pinned}`, r.gateway, r.direct);
    assert(r.gateway > 0n, 'balance of account 0 is zero');
  });

  await check('viem.getBlock', async () => {
    const byNumber = await both((side) => c[side].pub.getBlock({ blockNumber: pinned }));
    same(`block ${pinned}`, byNumber.gateway, byNumber.direct);
    const hash = byNumber.direct.hash;
    const byHash = await both((side) => c[side].pub.getBlock({ blockHash: hash }));
    same(`block by hash ${hash}`, byHash.gateway, byHash.direct);
    assert(byHash.gateway.hash === hash, `block by hash: asked ${hash}, got ${byHash.gateway.hash}`);
    same('block by number vs by hash', byHash.gateway, byNumber.gateway);
  });

  await check('viem.transfer', async () => {
    const r = await both(async (side) => {
      const { pub, wallet } = c[side];
      const hash = await wallet.sendTransaction({ to: ACCOUNT1, value: 1_000_000_000_000_000n });
      const receipt = await pub.waitForTransactionReceipt({ hash, pollingInterval: POLL_MS, timeout: 20_000 });
      assert(receipt.status === 'success', `${side}: transfer ${hash} has status ${receipt.status}`);
      assert(receipt.transactionHash === hash, `${side}: receipt is for ${receipt.transactionHash}, sent ${hash}`);
      // The same receipt, read through the other endpoint.
      const other = side === 'gateway' ? 'direct' : 'gateway';
      const again = await c[other].pub.getTransactionReceipt({ hash });
      same(`receipt of ${hash} (sent through ${side}, read through ${other} vs ${side})`, again, receipt);
      const tx = await c.gateway.pub.getTransaction({ hash });
      same(`transaction ${hash}`, tx, await c.direct.pub.getTransaction({ hash }));
      return receipt;
    });
    const shape = (x) => ({ status: x.status, type: x.type, from: x.from, to: x.to, gasUsed: x.gasUsed, logs: x.logs });
    same('transfer receipt shape', shape(r.gateway), shape(r.direct));
  });

  await check('viem.contract', async () => {
    const r = await both(async (side) => {
      const { pub, wallet } = c[side];
      const deployHash = await wallet.deployContract({ abi: ABI, bytecode: BYTECODE });
      const deployed = await pub.waitForTransactionReceipt({ hash: deployHash, pollingInterval: POLL_MS, timeout: 20_000 });
      assert(deployed.status === 'success', `${side}: deploy ${deployHash} has status ${deployed.status}`);
      const address = deployed.contractAddress;
      assert(address, `${side}: deploy receipt has no contractAddress`);
      const code = await pub.getCode({ address });
      assert(code === RUNTIME, `${side}: code at ${address} is ${short(code, 80)}, expected the runtime`);
      // Same byte pattern on both sides (calldata gas depends on zero bytes), distinct values.
      const value = 0x1234567890abcdef1234n * 256n + (side === 'gateway' ? 0x33n : 0x44n);
      const storeHash = await wallet.writeContract({ address, abi: ABI, functionName: 'store', args: [value] });
      const stored = await pub.waitForTransactionReceipt({ hash: storeHash, pollingInterval: POLL_MS, timeout: 20_000 });
      assert(stored.status === 'success', `${side}: store ${storeHash} has status ${stored.status}`);
      const read = await pub.readContract({ address, abi: ABI, functionName: 'retrieve' });
      assert(read === value, `${side}: retrieve() returned ${read}, stored ${value}`);
      const filter = { address, event: STORED, fromBlock: deployed.blockNumber, toBlock: stored.blockNumber };
      const logs = await pub.getLogs(filter);
      assert(logs.length === 1, `${side}: ${logs.length} Stored logs, expected 1`);
      assert(logs[0].args.value === value, `${side}: Stored(${logs[0].args.value}), expected ${value}`);
      assert(logs[0].transactionHash === storeHash, `${side}: log of ${logs[0].transactionHash}, expected ${storeHash}`);
      // The same logs, read through the other endpoint; and the contract state.
      const other = side === 'gateway' ? 'direct' : 'gateway';
      same(`logs of ${address} (through ${other} vs ${side})`, await c[other].pub.getLogs(filter), logs);
      same(
        `retrieve() at ${address} (through ${other} vs ${side})`,
        await c[other].pub.readContract({ address, abi: ABI, functionName: 'retrieve' }),
        read,
      );
      return { deployed, stored, logs };
    });
    const shape = (x) => ({
      deploy: [x.deployed.status, x.deployed.gasUsed, x.deployed.logs.length],
      store: [x.stored.status, x.stored.gasUsed, x.stored.logs.length],
      logs: x.logs.map((l) => [l.topics, l.removed, l.eventName]),
    });
    same('contract receipts and logs shape', shape(r.gateway), shape(r.direct));
  });

  await check('viem.errors', async () => {
    // A revert from eth_call (the contract is deployed through the direct endpoint).
    const hash = await c.direct.wallet.deployContract({ abi: ABI, bytecode: BYTECODE });
    const { contractAddress } = await c.direct.pub.waitForTransactionReceipt({ hash, pollingInterval: POLL_MS });
    const revert = await both((side) =>
      expectThrow(`${side}: fail()`, () => c[side].pub.readContract({ address: contractAddress, abi: ABI, functionName: 'fail' })).then(
        viemError,
      ),
    );
    same('revert error', revert.gateway, revert.direct);
    assert(revert.gateway.reason === 'nope', `revert reason ${revert.gateway.reason}, expected "nope"`);
    for (const method of UNKNOWN_METHODS) {
      const unknown = await both((side) =>
        expectThrow(`${side}: ${method}`, () => c[side].pub.request({ method, params: [] })).then(viemError),
      );
      same(`unknown method ${method} error`, unknown.gateway, unknown.direct);
      assert(unknown.gateway.codes.includes(-32601), `unknown method ${method}: codes ${unknown.gateway.codes}, expected -32601`);
    }
    const invalid = await both((side) =>
      expectThrow(`${side}: eth_getBalance(0xzz)`, () =>
        c[side].pub.request({ method: 'eth_getBalance', params: ['0xzz', 'latest'] }),
      ).then(viemError),
    );
    same('invalid params error', invalid.gateway, invalid.direct);
    assert(invalid.gateway.codes.includes(-32602), `invalid params: codes ${invalid.gateway.codes}, expected -32602`);
  });

  await check('viem.batch', async () => {
    const bodies = { gateway: [], direct: [] };
    const batched = {};
    for (const side of ['gateway', 'direct']) {
      batched[side] = viemClients(ENDPOINTS[side], {
        batch: { batchSize: 100, wait: 20 },
        onFetchRequest: (_req, init) => {
          bodies[side].push(JSON.parse(init.body));
        },
      }).pub;
    }
    const run = (pub) =>
      Promise.all([
        pub.getChainId(),
        pub.getBalance({ address: ACCOUNT0, blockNumber: pinned }),
        pub.getBlock({ blockNumber: pinned }),
        pub.getTransactionCount({ address: ACCOUNT1, blockNumber: pinned }),
        pub.request({ method: UNKNOWN_METHODS[0], params: [] }).then(
          () => 'no error',
          (e) => viemError(e),
        ),
      ]);
    const r = await both((side) => run(batched[side]));
    same('batched answers', r.gateway, r.direct);
    const arrays = bodies.gateway.filter(Array.isArray);
    assert(arrays.some((b) => b.length >= 5), `viem did not send a batch: bodies ${short(canon(bodies.gateway))}`);
    return `${arrays.length} batch(es)`;
  });
}

// ---------------------------------------------------------------------------------------------
// ethers v6

function ethersProvider(url) {
  return new JsonRpcProvider(url, undefined, { pollingInterval: POLL_MS, cacheTimeout: -1 });
}

function ethersError(e) {
  return {
    code: e.code,
    reason: e.reason ?? null,
    data: e.data ?? null,
    revert: e.revert ? { name: e.revert.name, args: [...e.revert.args] } : null,
    rpc: e.error ? { code: e.error.code, data: e.error.data ?? null } : null,
  };
}

async function ethersSuite() {
  const p = { gateway: ethersProvider(GATEWAY), direct: ethersProvider(DIRECT) };
  const w = { gateway: new Wallet(PK0, p.gateway), direct: new Wallet(PK0, p.direct) };
  let pinned;

  try {
    await check('ethers.chainId', async () => {
      const r = await both(async (side) => (await p[side].getNetwork()).chainId);
      same('chainId', r.gateway, r.direct);
      assert(r.gateway === BigInt(CHAIN_ID), `chainId ${r.gateway}, expected ${CHAIN_ID}`);
    });

    await check('ethers.blockNumber', async () => {
      const r = await both((side) => p[side].getBlockNumber());
      assert(Math.abs(r.gateway - r.direct) <= 2, `blockNumber: gateway ${r.gateway}, direct ${r.direct} (more than 2 apart)`);
      pinned = Math.min(r.gateway, r.direct) - 1;
      return `${r.gateway}/${r.direct}`;
    });

    await check('ethers.getBalance', async () => {
      const r = await both((side) => p[side].getBalance(ACCOUNT0, pinned));
      same(`balance of account 0 at block ${pinned}`, r.gateway, r.direct);
      assert(r.gateway > 0n, 'balance of account 0 is zero');
    });

    await check('ethers.getBlock', async () => {
      const byNumber = await both((side) => p[side].getBlock(pinned, true));
      assert(byNumber.gateway && byNumber.direct, `block ${pinned} missing: ${!!byNumber.gateway}/${!!byNumber.direct}`);
      same(`block ${pinned}`, byNumber.gateway, byNumber.direct);
      const hash = byNumber.direct.hash;
      const byHash = await both((side) => p[side].getBlock(hash, true));
      same(`block by hash ${hash}`, byHash.gateway, byHash.direct);
      assert(byHash.gateway.hash === hash, `block by hash: asked ${hash}, got ${byHash.gateway.hash}`);
      same('block by number vs by hash', byHash.gateway, byNumber.gateway);
    });

    await check('ethers.transfer', async () => {
      const r = await both(async (side) => {
        const tx = await w[side].sendTransaction({ to: ACCOUNT1, value: 1_000_000_000_000_000n });
        const receipt = await tx.wait(1, 20_000);
        assert(receipt.status === 1, `${side}: transfer ${tx.hash} has status ${receipt.status}`);
        assert(receipt.hash === tx.hash, `${side}: receipt is for ${receipt.hash}, sent ${tx.hash}`);
        const other = side === 'gateway' ? 'direct' : 'gateway';
        same(
          `receipt of ${tx.hash} (sent through ${side}, read through ${other} vs ${side})`,
          await p[other].getTransactionReceipt(tx.hash),
          receipt,
        );
        same(`transaction ${tx.hash}`, await p.gateway.getTransaction(tx.hash), await p.direct.getTransaction(tx.hash));
        return receipt;
      });
      const shape = (x) => ({ status: x.status, type: x.type, from: x.from, to: x.to, gasUsed: x.gasUsed, logs: x.logs });
      same('transfer receipt shape', shape(r.gateway), shape(r.direct));
    });

    await check('ethers.contract', async () => {
      const r = await both(async (side) => {
        const factory = new ContractFactory(ABI_HUMAN, BYTECODE, w[side]);
        const contract = await factory.deploy();
        const deployed = await contract.deploymentTransaction().wait(1, 20_000);
        assert(deployed.status === 1, `${side}: deploy has status ${deployed.status}`);
        const address = await contract.getAddress();
        assert(deployed.contractAddress === address, `${side}: receipt address ${deployed.contractAddress} vs ${address}`);
        const code = await p[side].getCode(address);
        assert(code === RUNTIME, `${side}: code at ${address} is ${short(code, 80)}, expected the runtime`);
        // Same byte pattern on both sides (calldata gas depends on zero bytes), distinct values.
        const value = 0x1234567890abcdef1234n * 256n + (side === 'gateway' ? 0x11n : 0x22n);
        const tx = await contract.store(value);
        const stored = await tx.wait(1, 20_000);
        assert(stored.status === 1, `${side}: store ${tx.hash} has status ${stored.status}`);
        const read = await contract.retrieve();
        assert(read === value, `${side}: retrieve() returned ${read}, stored ${value}`);
        const events = await contract.queryFilter(contract.filters.Stored(), deployed.blockNumber, stored.blockNumber);
        assert(events.length === 1, `${side}: ${events.length} Stored events, expected 1`);
        assert(events[0].args.value === value, `${side}: Stored(${events[0].args.value}), expected ${value}`);
        assert(events[0].transactionHash === tx.hash, `${side}: event of ${events[0].transactionHash}, expected ${tx.hash}`);
        const filter = { address, topics: [STORED_TOPIC], fromBlock: deployed.blockNumber, toBlock: stored.blockNumber };
        const other = side === 'gateway' ? 'direct' : 'gateway';
        same(`logs of ${address} (through ${other} vs ${side})`, await p[other].getLogs(filter), await p[side].getLogs(filter));
        const otherContract = new Contract(address, ABI_HUMAN, p[other]);
        same(`retrieve() at ${address} (through ${other} vs ${side})`, await otherContract.retrieve(), read);
        return { deployed, stored, events };
      });
      const shape = (x) => ({
        deploy: [x.deployed.status, x.deployed.gasUsed, x.deployed.logs.length],
        store: [x.stored.status, x.stored.gasUsed, x.stored.logs.length],
        events: x.events.map((e) => [e.topics, e.removed, e.eventName]),
      });
      same('contract receipts and logs shape', shape(r.gateway), shape(r.direct));
    });

    await check('ethers.errors', async () => {
      const factory = new ContractFactory(ABI_HUMAN, BYTECODE, w.direct);
      const deployed = await factory.deploy();
      await deployed.waitForDeployment();
      const address = await deployed.getAddress();
      const revert = await both((side) =>
        expectThrow(`${side}: fail()`, () => new Contract(address, ABI_HUMAN, p[side]).fail()).then(ethersError),
      );
      same('revert error', revert.gateway, revert.direct);
      assert(revert.gateway.code === 'CALL_EXCEPTION', `revert: ethers code ${revert.gateway.code}, expected CALL_EXCEPTION`);
      assert(revert.gateway.reason === 'nope', `revert reason ${revert.gateway.reason}, expected "nope"`);
      assert(revert.gateway.data === NOPE, `revert data ${revert.gateway.data}, expected Error("nope")`);
      for (const method of UNKNOWN_METHODS) {
        const unknown = await both((side) => expectThrow(`${side}: ${method}`, () => p[side].send(method, [])).then(ethersError));
        same(`unknown method ${method} error`, unknown.gateway, unknown.direct);
        assert(unknown.gateway.rpc?.code === -32601, `unknown method ${method}: ${canon(unknown.gateway)}, expected -32601`);
      }
      const invalid = await both((side) =>
        expectThrow(`${side}: eth_getBalance(0xzz)`, () => p[side].send('eth_getBalance', ['0xzz', 'latest'])).then(
          ethersError,
        ),
      );
      same('invalid params error', invalid.gateway, invalid.direct);
      assert(invalid.gateway.rpc?.code === -32602, `invalid params: ${canon(invalid.gateway)}, expected -32602`);
    });
  } finally {
    p.gateway.destroy();
    p.direct.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Raw JSON-RPC: batches and errors byte-level (ids, order, codes, data)

async function rawSuite() {
  let pinned;
  await check('raw.batch', async () => {
    const head = await rpc(DIRECT, 'eth_blockNumber', []);
    pinned = `0x${(BigInt(head.result) - 1n).toString(16)}`;
    const batch = [
      { jsonrpc: '2.0', id: 'a-string-id', method: 'eth_chainId', params: [] },
      { jsonrpc: '2.0', id: 7, method: 'eth_getBalance', params: [ACCOUNT0, pinned] },
      { jsonrpc: '2.0', id: null, method: 'eth_getBlockByNumber', params: [pinned, false] },
      { jsonrpc: '2.0', id: 0, method: UNKNOWN_METHODS[0], params: [] },
      { jsonrpc: '2.0', id: 'other namespace', method: UNKNOWN_METHODS[1], params: [] },
      { jsonrpc: '2.0', id: '7', method: 'eth_call', params: [{ to: ACCOUNT1, data: '0x' }, pinned] },
      { jsonrpc: '2.0', id: 12345678901, method: 'eth_getBalance', params: ['0xzz', 'latest'] },
      { jsonrpc: '2.0', id: -3, method: 'eth_getTransactionCount', params: [ACCOUNT0, pinned] },
      { jsonrpc: '2.0', id: 'last', method: 'eth_getBlockByNumber', params: [pinned, true] },
    ];
    const r = await both((_, url) => post(url, batch));
    assert(r.gateway.status === 200, `batch: HTTP ${r.gateway.status}: ${short(canon(r.gateway.json))}`);
    assert(Array.isArray(r.gateway.json), `batch answer is not an array: ${short(canon(r.gateway.json))}`);
    assert(r.gateway.json.length === batch.length, `batch: ${r.gateway.json.length} answers for ${batch.length} requests`);
    same(
      'batch ids in order',
      r.gateway.json.map((x) => x.id),
      batch.map((x) => x.id),
    );
    const norm = (answers) => answers.map((x) => (x.error ? { id: x.id, code: x.error.code } : x));
    same('batch answers', norm(r.gateway.json), norm(r.direct.json));
    return r.gateway.servedBy ? `served by ${r.gateway.servedBy}` : undefined;
  });

  await check('raw.errors', async () => {
    const hash = (
      await rpc(DIRECT, 'eth_sendTransaction', [{ from: ACCOUNT0, data: BYTECODE }])
    ).result;
    assert(hash, 'could not deploy the contract directly');
    let receipt;
    for (let i = 0; i < 100 && !receipt; i++) {
      receipt = (await rpc(DIRECT, 'eth_getTransactionReceipt', [hash])).result;
      if (!receipt) await new Promise((res) => setTimeout(res, POLL_MS));
    }
    assert(receipt?.contractAddress, `deploy ${hash} not mined`);
    const revert = await both((_, url) => rpc(url, 'eth_call', [{ to: receipt.contractAddress, data: FAIL_DATA }, 'latest'], 42));
    assert(revert.direct.error, `direct eth_call of fail() did not revert: ${canon(revert.direct)}`);
    same('eth_call revert (whole answer)', revert.gateway, revert.direct);
    assert(revert.gateway.error.data === NOPE, `revert data ${revert.gateway.error.data}, expected Error("nope")`);
    for (const method of UNKNOWN_METHODS) {
      const unknown = await both((_, url) => rpc(url, method, [], 'u'));
      assert(unknown.gateway.id === 'u', `unknown method ${method}: id ${canon(unknown.gateway.id)}, sent "u"`);
      assert(unknown.gateway.error?.code === -32601, `unknown method ${method}: ${canon(unknown.gateway)}, expected -32601`);
      same(`unknown method ${method} code`, unknown.gateway.error.code, unknown.direct.error?.code);
    }
    for (const params of [['0xzz', 'latest'], []]) {
      const invalid = await both((_, url) => rpc(url, 'eth_getBalance', params, 9));
      assert(invalid.gateway.id === 9, `invalid params: id ${canon(invalid.gateway.id)}, sent 9`);
      assert(invalid.gateway.error?.code === -32602, `invalid params ${canon(params)}: ${canon(invalid.gateway)}, expected -32602`);
      same(`invalid params ${canon(params)} code`, invalid.gateway.error.code, invalid.direct.error?.code);
    }
    return `revert code ${revert.gateway.error.code}`;
  });
}

// ---------------------------------------------------------------------------------------------
// Subscriptions over WebSocket: newHeads, at least two consecutive blocks

async function viemHeads(url) {
  const client = createPublicClient({ chain, transport: webSocket(url, { reconnect: false, retryCount: 0, timeout: 10_000 }) });
  const blocks = [];
  let unwatch;
  try {
    await new Promise((resolve, reject) => {
      unwatch = client.watchBlocks({
        emitOnBegin: false,
        poll: false,
        onBlock: (b) => {
          blocks.push(b);
          if (blocks.length >= 2) resolve();
        },
        onError: reject,
      });
    });
  } finally {
    unwatch?.();
    try {
      (await client.transport.getRpcClient()).close();
    } catch {
      // already closed
    }
  }
  return blocks;
}

async function ethersHeads(url) {
  const provider = new WebSocketProvider(url, undefined, { staticNetwork: true });
  const numbers = [];
  try {
    await new Promise((resolve, reject) => {
      provider.on('error', reject);
      provider.websocket.onerror = (e) => reject(new Error(`WebSocket error: ${e?.message ?? e}`));
      provider.on('block', (n) => {
        numbers.push(n);
        if (numbers.length >= 2) resolve();
      });
    });
  } finally {
    await provider.destroy();
  }
  return numbers;
}

function consecutive(what, blocks) {
  const [a, b] = blocks;
  assert(b.number === a.number + 1n, `${what}: blocks ${a.number} then ${b.number}, not consecutive`);
  assert(b.parentHash === a.hash, `${what}: block ${b.number} parent ${b.parentHash} is not ${a.hash}`);
}

async function wsSuite() {
  // Against anvil first: proves the check itself, so a gateway failure is the gateway's.
  await check('ws.viem.direct', async () => consecutive('direct', await viemHeads(DIRECT_WS)), WS_TIMEOUT_MS);
  await check(
    'ws.ethers.direct',
    async () => {
      const [a, b] = await ethersHeads(DIRECT_WS);
      assert(b === a + 1, `direct: blocks ${a} then ${b}, not consecutive`);
    },
    WS_TIMEOUT_MS,
  );
  await check(
    'ws.viem.gateway',
    async () => {
      const blocks = await viemHeads(GATEWAY_WS);
      consecutive('gateway', blocks);
      // The heads are the chain's: the same block read directly.
      const direct = await rpc(DIRECT, 'eth_getBlockByNumber', [`0x${blocks[1].number.toString(16)}`, false]);
      assert(direct.result?.hash === blocks[1].hash, `head ${blocks[1].number}: ${blocks[1].hash} vs direct ${direct.result?.hash}`);
      return `${blocks[0].number}..${blocks[1].number}`;
    },
    WS_TIMEOUT_MS,
  );
  await check(
    'ws.ethers.gateway',
    async () => {
      const [a, b] = await ethersHeads(GATEWAY_WS);
      assert(b === a + 1, `gateway: blocks ${a} then ${b}, not consecutive`);
      return `${a}..${b}`;
    },
    WS_TIMEOUT_MS,
  );
}

// ---------------------------------------------------------------------------------------------

await check('chain has blocks', () => waitForBlocks(3));
await viemSuite();
await ethersSuite();
await rawSuite();
if (GATEWAY_WS) {
  await wsSuite();
} else {
  skip('ws', 'no gateway WebSocket URL given');
}
if (failures.length) {
  process.stdout.write(summary({ failed: failures[0][0], reason: failures[0][1], failures }) + '\n');
  process.stderr.write(`${failures.length} check(s) failed: ${failures.map((f) => f[0]).join(', ')}\n`);
  process.exit(1);
}
process.stdout.write(summary() + '\n');
process.exit(0);
