/**
 * Where a .cpuprofile's time went: functions by self time and, for the package's own
 * code (dist/), by total time (self plus callees). Used by `npm run bench -- --cpu-prof`,
 * or alone: `node --import tsx bench/profile-summary.ts .bench/<file>.cpuprofile [top]`.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { REPO_ROOT } from './children.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

interface FunctionTime {
  name: string;
  where: string;
  selfUs: number;
  totalUs: number;
}

/** Time not spent running anyone's code, left out of the percentages. */
const IDLE = new Set(['(idle)']);

function describe(frame: CallFrame): { name: string; where: string } {
  const name = frame.functionName || '(anonymous)';
  if (!frame.url) return { name, where: '' };
  const url = frame.url.replace(`file://${REPO_ROOT}/`, '').replace(/^file:\/\//, '');
  return { name, where: `${url}:${frame.lineNumber + 1}` };
}

export function summarizeProfile(profile: CpuProfile): { busyUs: number; idleUs: number; functions: FunctionTime[] } {
  const parentOf = new Map<number, number>();
  const nodeById = new Map<number, ProfileNode>();
  for (const node of profile.nodes) {
    nodeById.set(node.id, node);
    for (const child of node.children ?? []) parentOf.set(child, node.id);
  }
  const byKey = new Map<string, FunctionTime>();
  const keyOf = new Map<number, string>();
  for (const node of profile.nodes) {
    const { name, where } = describe(node.callFrame);
    const key = `${name} ${where}`;
    keyOf.set(node.id, key);
    if (!byKey.has(key)) byKey.set(key, { name, where, selfUs: 0, totalUs: 0 });
  }
  let busyUs = 0;
  let idleUs = 0;
  profile.samples.forEach((nodeId, index) => {
    // timeDeltas[i] is the time before sample i; attribute the next delta to it.
    const us = profile.timeDeltas[index + 1] ?? 0;
    const node = nodeById.get(nodeId)!;
    if (IDLE.has(node.callFrame.functionName)) {
      idleUs += us;
      return;
    }
    busyUs += us;
    byKey.get(keyOf.get(nodeId)!)!.selfUs += us;
    const seen = new Set<string>();
    for (let id: number | undefined = nodeId; id !== undefined; id = parentOf.get(id)) {
      const key = keyOf.get(id)!;
      if (seen.has(key)) continue;
      seen.add(key);
      byKey.get(key)!.totalUs += us;
    }
  });
  return { busyUs, idleUs, functions: [...byKey.values()] };
}

export function formatProfileSummary(path: string, top = 25): string {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const { busyUs, idleUs, functions } = summarizeProfile(profile);
  const percent = (us: number) => `${((us / busyUs) * 100).toFixed(1).padStart(5)}%`;
  const line = (f: FunctionTime, us: number) => `  ${percent(us)}  ${(us / 1000).toFixed(0).padStart(7)} ms  ${f.name}  ${f.where}`;
  const bySelf = [...functions].sort((a, b) => b.selfUs - a.selfUs).slice(0, top);
  const ours = functions
    .filter((f) => f.where.startsWith('dist/'))
    .sort((a, b) => b.totalUs - a.totalUs)
    .slice(0, Math.ceil(top / 2));
  return [
    `profile ${path}: busy ${(busyUs / 1000).toFixed(0)} ms, idle ${(idleUs / 1000).toFixed(0)} ms (percentages are of busy time)`,
    `top ${top} by self time:`,
    ...bySelf.map((f) => line(f, f.selfUs)),
    `sessionserver's own functions (dist/) by total time, callees included:`,
    ...ours.map((f) => line(f, f.totalUs)),
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [path, top] = process.argv.slice(2);
  if (!path) {
    console.error('usage: node --import tsx bench/profile-summary.ts <file.cpuprofile> [top]');
    process.exit(2);
  }
  console.log(formatProfileSummary(path, top ? Number(top) : undefined));
}
