"""`nbdev-test`, with every notebook in a process of its own.

nbdev-test hands the notebooks to a pool of worker processes that live on from one notebook to the
next. botcore builds its bigger classes across notebooks with fastcore's `@patch` (the engine's
notebooks each add methods to `Engine`), and a notebook's exported cells run again in its test
kernel: the methods they patch onto a class imported from another module stay patched in that
worker, bound to the notebook's own copies of its classes. A later notebook on the same worker then
meets, say, an `AddOrder` of the library and a `commit` that knows only the notebook's `AddOrder`,
and fails for a reason no reader of either notebook could see. One process per notebook
(`max_tasks_per_child=1`) runs each notebook as a reader does: from a fresh interpreter.

Takes nbdev-test's own arguments: `python .ci/nbtest.py --n-workers 2 --timing`.
"""
import functools

import nbdev.test

nbdev.test.parallel = functools.partial(nbdev.test.parallel, max_tasks_per_child=1)

if __name__ == '__main__':
    nbdev.test.nbdev_test()
