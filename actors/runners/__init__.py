"""Runners: every decision of an actor's life, driven through a small port (DESIGN §3).

A runner sits between the pure cores (`SliceScheduler`, `LegLedger`, `BasketCoordinator`,
…) and the I/O. It owns an actor's status machine, its retry and give-up rules, its
deadlines and backoffs, and the assembly of its report; it reaches the world only through
its port (`actors.runners.port`): the time, timers, messages to other actors and
callback-style venue calls. Two drivers give it that port: the Ray/asyncio shells
(`actors/shells`, live) and the discrete-event loop (`actors/backtest`, simulated time).
A runner has no `async`, no Ray and no I/O of its own, so every path of it, failures
included, runs in a unit test on a fake clock.
"""
