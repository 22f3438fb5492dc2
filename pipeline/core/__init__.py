"""What every stage stands on and that knows nothing of audio or models: errors and their
fixes (``errors``), the two trees' paths (``layout``), atomic writes and strict JSON
(``atomic``), cache keys over content and code (``hashing``), locks, progress and logging,
where per-item work runs (``engines``), fault injection for tests (``faults``), the
model's label set (``labels``) and the scores computed from predictions (``metrics``).
Imports nothing from the rest of the package."""
