"""The doors that see Hydra: ``cli`` (tracker, tracker-eval, tracker-train, tracker-report), ``studio``
(tracker-studio), ``help``. Each composes its config and hands a typed spec to the layers below."""
