"""Import cycles in memvos_jax: the module-level import graph, its strongly connected
components (a cycle = a component of 2+ modules), and every function-local import of a
memvos_jax module (each should have a reason other than dodging a cycle).

    python scripts/import_graph.py     (from the repo root)
"""
import ast, pathlib, sys
root = pathlib.Path(__file__).resolve().parents[1] / 'memvos_jax'
mods = {}
for p in root.rglob('*.py'):
  name = '.'.join(p.relative_to(root.parent).with_suffix('').parts)
  if name.endswith('.__init__'): name = name[:-9]
  mods[name] = p
graph, local = {m: set() for m in mods}, []
for m, p in mods.items():
  tree = ast.parse(p.read_text())
  pkg = m if p.name == '__init__.py' else m.rsplit('.', 1)[0]
  def targets(node):
    if isinstance(node, ast.Import):
      return [a.name for a in node.names]
    base = node.module or ''
    if node.level:
      base = '.'.join(pkg.split('.')[:len(pkg.split('.')) - node.level + 1] + ([base] if base else []))
    out = [base]
    out += [f'{base}.{a.name}' for a in node.names]
    return out
  for node in ast.walk(tree):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
      ts = [t for t in targets(node) if t in mods and t != m]
      top = node in tree.body
      if top: graph[m].update(ts)
      elif ts: local.append((m, node.lineno, ts))
# Tarjan SCC
idx, low, st, on, out, c = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(10000)
def sc(v):
  idx[v] = low[v] = c[0]; c[0] += 1; st.append(v); on.add(v)
  for w in graph[v]:
    if w not in idx: sc(w); low[v] = min(low[v], low[w])
    elif w in on: low[v] = min(low[v], idx[w])
  if low[v] == idx[v]:
    comp = []
    while True:
      w = st.pop(); on.discard(w); comp.append(w)
      if w == v: break
    if len(comp) > 1: out.append(comp)
for v in graph:
  if v not in idx: sc(v)
# a package importing its own submodule (pkg/__init__ -> pkg.sub -> pkg) is how Python packages work; report all
print(f'{len(mods)} modules, {sum(len(v) for v in graph.values())} module-level import edges')
print('cycles:', out or 'none')
print('function-local imports of memvos_jax modules:')
for m, line, ts in local:
  print(f'  {mods[m].relative_to(root.parent)}:{line} -> {", ".join(ts)}')
