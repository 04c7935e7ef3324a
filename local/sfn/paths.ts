// ASL reference paths ($.a.b[0], $['x'], $$.Execution.Id) for the fields the engine evaluates itself.

/** Splits a reference path into property/index steps; reference paths have no wildcards or filters. */
function parseSteps(path: string): (string | number)[] {
  const steps: (string | number)[] = [];
  let i = 1; // after '$'
  while (i < path.length) {
    const ch = path[i];
    if (ch === '.') {
      let j = i + 1;
      while (j < path.length && path[j] !== '.' && path[j] !== '[') j++;
      const name = path.slice(i + 1, j);
      if (!name || name === '*') throw new Error(`unsupported reference path '${path}'`);
      steps.push(name);
      i = j;
    } else if (ch === '[') {
      const close = path.indexOf(']', i);
      if (close < 0) throw new Error(`unsupported reference path '${path}'`);
      const inner = path.slice(i + 1, close).trim();
      if (/^\d+$/.test(inner)) steps.push(Number(inner));
      else if (/^'.*'$|^".*"$/.test(inner)) steps.push(inner.slice(1, -1));
      else throw new Error(`unsupported reference path '${path}'`);
      i = close + 1;
    } else {
      throw new Error(`unsupported reference path '${path}'`);
    }
  }
  return steps;
}

/** A reference path parsed once: reads it from an input (or, for `$$` paths, the context object). */
export function compilePath(path: string): (input: unknown, context?: unknown) => unknown {
  const fromContext = path.startsWith('$$');
  const rest = fromContext ? path.slice(1) : path;
  if (!rest.startsWith('$')) throw new Error(`unsupported reference path '${path}'`);
  const steps = parseSteps(rest);
  return (input, context) => {
    let target: unknown = fromContext ? context : input;
    for (const step of steps) {
      if (target === null || typeof target !== 'object') return undefined;
      target = (target as Record<string | number, unknown>)[step];
    }
    return target;
  };
}

/** Resolves a reference path; `$$` paths read the context object. Returns undefined when nothing is there. */
export function readPath(path: string, input: unknown, context?: unknown): unknown {
  let target: unknown = input;
  let rest = path;
  if (path.startsWith('$$')) {
    target = context;
    rest = path.slice(1);
  }
  if (!rest.startsWith('$')) throw new Error(`unsupported reference path '${path}'`);
  for (const step of parseSteps(rest)) {
    if (target === null || typeof target !== 'object') return undefined;
    target = (target as Record<string | number, unknown>)[step];
  }
  return target;
}
