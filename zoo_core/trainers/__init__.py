"""The core's trainers: ``accelerate`` (``accelerated.AccelerateTrainer``, the default) and
``plain`` (``plain.PlainTrainer``). Both are registered through ``zoo_register_trainers`` in
``zoo_core.builtin``, like any plugin's; ``conformance.check_trainer`` tests any registered one."""
