"""Import cycles and layers in memvos_jax: the module-level import graph, its strongly
connected components (a cycle = a component of 2+ modules), the imports that run against
the layers of docs/architecture.md (``LAYERS``) or from one model's folder into
another's, and every function-local import of a memvos_jax module (each should have a
reason other than dodging a cycle).

    python scripts/import_graph.py     (from the repo root)
"""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / 'memvos_jax'

# The layers of docs/architecture.md, lowest first: a module may import from its own
# layer and the ones before it. A module is in the layer of the longest prefix naming it
# (``memvos_jax`` itself, whose ``__init__`` only defines a lazy ``load``, is the base).
LAYERS = (
    ('base', ('memvos_jax', 'memvos_jax.errors', 'memvos_jax.configs')),
    ('nn', ('memvos_jax.nn',)),
    ('memory', ('memvos_jax.memory',)),
    ('data', ('memvos_jax.data', 'memvos_jax.metrics')),
    ('convert', ('memvos_jax.convert',)),
    ('inference', ('memvos_jax.inference',)),
    ('training', ('memvos_jax.training',)),
    ('models', ('memvos_jax.models',)),
    ('registry', ('memvos_jax.registry',)),
    ('api', ('memvos_jax.api', 'memvos_jax.sam2', 'memvos_jax.sam2_predictor')),
    ('apps', ('memvos_jax.apps', 'memvos_jax.__main__', 'memvos_jax.convert.__main__')),
)
MODELS = 'memvos_jax.models'


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


def layer(module: str, layers=LAYERS) -> int:
  """Index in ``layers`` of the longest prefix that names ``module``."""
  best, length = None, -1
  for i, (_, prefixes) in enumerate(layers):
    for p in prefixes:
      if (module == p or module.startswith(p + '.')) and len(p) > length:
        best, length = i, len(p)
  if best is None:
    raise ValueError(f'{module} is in no layer: add it to LAYERS')
  return best


def against_layers(graph, layers=LAYERS) -> list[tuple[str, str]]:
  """Edges from a module to one of a higher layer."""
  return sorted((a, b) for a, bs in graph.items() for b in bs
                if layer(a, layers) < layer(b, layers))


def model_of(module: str) -> str | None:
  """The model folder ``memvos_jax.models.<name>`` a module belongs to (None: shared)."""
  parts = module.split('.')
  if len(parts) >= 3 and '.'.join(parts[:2]) == MODELS and (PACKAGE / 'models' / parts[2]).is_dir():
    return '.'.join(parts[:3])
  return None


def between_models(graph) -> list[tuple[str, str]]:
  """Edges from one model's folder into another's."""
  return sorted((a, b) for a, bs in graph.items() for b in bs
                if model_of(a) and model_of(b) and model_of(a) != model_of(b))


def main():
  mods = module_paths(PACKAGE)
  graph, local = import_graph(mods)
  # A package importing its own submodule (pkg/__init__ -> pkg.sub -> pkg) is how
  # Python packages work; such components are reported like any other.
  print(f'{len(mods)} modules, {sum(len(v) for v in graph.values())} module-level import edges')
  print('cycles:', cycles(graph) or 'none')
  up = against_layers(graph)
  print(f'against the layers ({" < ".join(name for name, _ in LAYERS)}): {len(up) or "none"}')
  for a, b in up:
    print(f'  {a} -> {b}')
  across = between_models(graph)
  print(f'from one model folder into another: {len(across) or "none"}')
  for a, b in across:
    print(f'  {a} -> {b}')
  print('function-local imports of memvos_jax modules:')
  for m, line, found in local:
    print(f'  {mods[m].relative_to(PACKAGE.parent)}:{line} -> {", ".join(found)}')


if __name__ == '__main__':
  main()
