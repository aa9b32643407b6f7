"""Keeping a long-running process's garbage collections short.

Signing, sealing and verifying a record each build an object graph of ~100 000 objects
(the PDF's objects, the CMS structures) that lives until the step ends. Each such step
hands CPython's oldest generation a heap of them, so a full collection follows every few
records — and a full collection walks everything the process holds: modules, templates,
fonts, the parsed certificates it shares. In a verification process that was a tenth of
the time of a record.
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    """Collect, then leave everything the process holds now out of every later collection
    (:func:`gc.freeze`): call it once the long-lived part is in place (after a warm-up or a
    first record), so that later collections walk only the records' own objects. A frozen
    object is still freed when its last reference goes; only a cycle of frozen objects
    would stay, so call it after the collection, on what the process keeps anyway."""
    gc.collect()
    gc.freeze()
