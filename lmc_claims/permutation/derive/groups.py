"""The union-find of permutation groups. Group 0 is fixed (never permuted). A group may be
*restricted*: split into parts that stay in place (q, k and v of a packed projection), or made of
blocks (heads) moved by another group's permutation and permuted inside; a restricted
permutation is one of the unrestricted ones, so restricting never breaks exactness.
"""

from __future__ import annotations


class _Groups:
    """Union-find over channel groups; group 0 is the fixed (never permuted) group.

    A group's permutation may be restricted, which keeps every symmetry found exact (a
    restricted permutation is still one of those the rules allowed):
    - `blocks[g] = (h, m)`: g's units form blocks of m consecutive units (heads); group h's
      permutation moves whole blocks, and the units inside each block are permuted freely;
    - `parts[g] = ((g1, n1), (g2, n2), ...)`: g's units split into consecutive parts that stay
      where they are, each permuted by its own group (a slice of a packed q/k/v projection).
    Uniting groups unites their restrictions; where they cannot be united (different block
    sizes or parts), the group is fixed.
    """

    def __init__(self):
        self.parent = [0]
        self.origin = ["fixed"]
        self.blocks: dict[int, tuple[int, int]] = {}
        self.parts: dict[int, tuple[tuple[int, int], ...]] = {}

    def new(self, origin: str) -> int:
        self.parent.append(len(self.parent))
        self.origin.append(origin)
        return len(self.parent) - 1

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        keep, drop = (ra, rb) if ra < rb else (rb, ra)  # the fixed group (0) always wins
        self.parent[drop] = keep
        bd, pd = self.blocks.pop(drop, None), self.parts.pop(drop, None)
        if keep == 0:
            self._fix_restrictions(bd, pd)
            return 0
        bk, pk = self.blocks.get(keep), self.parts.get(keep)
        clash = False
        if pd is not None and pk is not None:
            if [n for _, n in pd] == [n for _, n in pk]:
                for (x, _), (y, _) in zip(pd, pk):
                    self.union(x, y)
            else:
                clash = True
        elif pd is not None:
            self.parts[keep] = pd
        if bd is not None and bk is not None:
            if bd[1] == bk[1]:
                self.union(bd[0], bk[0])
            else:
                clash = True
        elif bd is not None:
            self.blocks[keep] = bd
        keep = self.find(keep)
        if clash or (keep in self.blocks and keep in self.parts):
            self._fix_restrictions(bd, pd)
            self.fix(keep)
        return self.find(keep)

    def fix(self, g: int) -> None:
        """Fix group g, and the groups its restrictions name."""
        r = self.find(g)
        if r == 0:
            return
        self.parent[r] = 0
        self._fix_restrictions(self.blocks.pop(r, None), self.parts.pop(r, None))

    def _fix_restrictions(self, blocks, parts) -> None:
        if blocks is not None:
            self.fix(blocks[0])
        for x, _ in parts or ():
            self.fix(x)

    def head_roots(self) -> set[int]:
        return {self.find(h) for h, _ in self.blocks.values()} - {0}

    def structure(self, g: int, m: int) -> int | None:
        """Restrict g to blocks of m units; returns the group moving the blocks (0: they stay),
        None where g cannot be restricted so (it is split into parts)."""
        r = self.find(g)
        if r == 0:
            return 0
        if r in self.parts:
            return None
        if r in self.head_roots():  # heads of heads: not a structure a spec can declare
            self.fix(r)
            return 0
        if r in self.blocks:
            h, m0 = self.blocks[r]
            if m0 == m:
                return self.find(h)
            self.fix(r)
            return 0
        h = self.new(f"{self.origin[r]}:heads")
        self.blocks[r] = (h, m)
        return h

    def refine(self, g: int, sizes: list[int]) -> bool:
        """Split g's units into consecutive parts of these sizes; False where g is restricted."""
        r = self.find(g)
        if r == 0:
            return True
        if r in self.blocks or r in self.parts or r in self.head_roots():
            return False
        # parts are named by their units' range in the group first split
        base, start = self.origin[r], 0
        if base.endswith("]") and "[" in base:
            head, _, span = base[:-1].rpartition("[")
            lo = span.partition(":")[0]
            if lo.isdigit():
                base, start = head, int(lo)
        parts = []
        for n in sizes:
            parts.append((self.new(f"{base}[{start}:{start + n}]"), n))
            start += n
        self.parts[r] = tuple(parts)
        return True
