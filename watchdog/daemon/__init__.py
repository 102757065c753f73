"""The daemon's centre: one explicit state, one tick, the control commands, and the service around them.

Read it in this order:

=================  =====================================================================================
``state``          :class:`DaemonState`, everything that outlives a tick, and its saving to / restoring
                   from the ledger (the one place either happens)
``tick``           :func:`run_tick(state, ports, config, now) <tick.run_tick>`: the six stages below, in
                   order, and the only writer of the state during a tick
``fetch``          stage 1: the logs and RunPod, read (no state)
``track``          stage 2: the reading against the tracker's memory (``tracker``: durations, own actions)
``accounting``     the live estimate of each interval and the month to date (pure)
``evaluate``       stage 3: configuration → policy inputs, and the policy's decisions (pure)
``execute``        stage 4: decisions → RunPod calls, and the verification of applied ones (no state)
``notices``        alert and event wording, the one rule → event mapping (pure)
``publish``        stage 6: the status the dashboard and the metrics read (pure)
``commands``       control-socket actions, recorded through the same path as a tick, in one transaction
``ports``          what a tick talks to: client, ledger, log tailers, status, alert wake-up, clock
``service``        :class:`Daemon` and ``serve``: open/close, the run loop, reload, signals, sd_notify
=================  =====================================================================================

What may touch what: the stages import the leaves (config, client types, ledger, money, policy, traffic,
logwatch, status, vocabulary) and each other downstream only; nothing in this package imports
``service`` (import-linter checks it), and nothing here imports the dashboard or the simulator. This
``__init__`` imports nothing, so importing a stage never loads the service.
"""
