"""Import cycles in memvos_jax: the module-level import graph, its strongly connected
components (a cycle = a component of 2+ modules), and every function-local import of a
memvos_jax module (each should have a reason other than dodging a cycle).

    python scripts/import_graph.py     (from the repo root)
"""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / 'memvos_jax'


def module_paths(package: pathlib.Path) -> dict[str, pathlib.Path]:
  """Dotted module name -> file, for every .py file under ``package``."""
  mods = {}
  for path in package.rglob('*.py'):
    name = '.'.join(path.relative_to(package.parent).with_suffix('').parts)
    mods[name.removesuffix('.__init__')] = path
  return mods


def _targets(node, pkg: str) -> list[str]:
  """The modules an import statement may name (``from a import b``: a and a.b)."""
  if isinstance(node, ast.Import):
    return [a.name for a in node.names]
  base = node.module or ''
  if node.level:
    parts = pkg.split('.')
    base = '.'.join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
  return [base] + [f'{base}.{a.name}' for a in node.names]


def import_graph(mods):
  """(module -> modules it imports at module level, [(module, line, targets)] local imports)."""
  graph, local = {m: set() for m in mods}, []
  for m, path in mods.items():
    tree = ast.parse(path.read_text())
    pkg = m if path.name == '__init__.py' else m.rsplit('.', 1)[0]
    for node in ast.walk(tree):
      if not isinstance(node, (ast.Import, ast.ImportFrom)):
        continue
      found = [t for t in _targets(node, pkg) if t in mods and t != m]
      if node in tree.body:
        graph[m].update(found)
      elif found:
        local.append((m, node.lineno, found))
  return graph, local


def cycles(graph) -> list[list[str]]:
  """Strongly connected components of 2+ modules (Tarjan, iterative)."""
  index, low, stack, on_stack, out = {}, {}, [], set(), []
  for start in graph:
    if start in index:
      continue
    work = [(start, iter(sorted(graph[start])))]
    index[start] = low[start] = len(index)
    stack.append(start)
    on_stack.add(start)
    while work:
      v, children = work[-1]
      w = next(children, None)
      if w is not None:
        if w not in index:
          index[w] = low[w] = len(index)
          stack.append(w)
          on_stack.add(w)
          work.append((w, iter(sorted(graph[w]))))
        elif w in on_stack:
          low[v] = min(low[v], index[w])
        continue
      work.pop()
      if work:
        low[work[-1][0]] = min(low[work[-1][0]], low[v])
      if low[v] == index[v]:
        comp = []
        while True:
          w = stack.pop()
          on_stack.discard(w)
          comp.append(w)
          if w == v:
            break
        if len(comp) > 1:
          out.append(comp)
  return out


def main():
  mods = module_paths(PACKAGE)
  graph, local = import_graph(mods)
  # A package importing its own submodule (pkg/__init__ -> pkg.sub -> pkg) is how
  # Python packages work; such components are reported like any other.
  print(f'{len(mods)} modules, {sum(len(v) for v in graph.values())} module-level import edges')
  print('cycles:', cycles(graph) or 'none')
  print('function-local imports of memvos_jax modules:')
  for m, line, found in local:
    print(f'  {mods[m].relative_to(PACKAGE.parent)}:{line} -> {", ".join(found)}')


if __name__ == '__main__':
  main()
