"""Training time over a whole bundled series (default: BTCUSDT 1h, ~58k candles) on this machine's CPUs.

Two modes:

1. One epoch (the default, as before): time one training epoch of a torch model's default configuration
   over every window of the series (no validation or test split): the same `train_epoch` that
   `train_model` runs; then batched inference over the same windows (what a backtest does).
   Goal (issue 3): <= 60 s per epoch on 2 CPU cores.

       .venv/bin/python benchmarks/train_bench.py                 # lstm, one epoch
       .venv/bin/python benchmarks/train_bench.py --threads 2 --epochs 2   # two intra-op threads, two epochs
       .venv/bin/python benchmarks/train_bench.py --model-type gru   # or transformer, mlp

2. The zoo (`--model-types`): `train_model` of each type's DEFAULT `TrainConfig(model_type=...)` on the
   series, as `botcore train` would run it (chronological train/validation/test split, early stopping,
   calibration, test metrics; `max_train_seconds` is None by default, so nothing cuts a run short).
   Printed per type: the wall time, epochs run (torch) or boosting rounds kept (LightGBM) or solver
   iterations (logistic), why it stopped, test ROC AUC, test log loss against the majority class's,
   the calibration chosen, and whether it meets the goal of <= 2 minutes. `lightgbm-mtf` is LightGBM
   with `features='mtf'` (the higher timeframes' features too).

       .venv/bin/python benchmarks/train_bench.py --model-types all
       .venv/bin/python benchmarks/train_bench.py --model-types lightgbm,logistic,lightgbm-mtf
"""
import os
import time

import torch
from fastcore.script import call_parse

from botcore.data.candles import load_candles
from botcore.model.samples import fit_scaler, make_samples, scale_rows
from botcore.model.network import TORCH_TYPES, WindowDataset, build_net, predict_windows, window_loader
from botcore.model.training import MODEL_TYPES, TrainConfig, seeded, train_epoch, train_model

GOAL_SECONDS = 60.0          # one epoch
ZOO_GOAL_SECONDS = 120.0     # a whole default training run
ZOO = (*MODEL_TYPES, 'lightgbm-mtf')


def zoo_config(name: str, threads: int | None = None) -> TrainConfig:
    "The default `TrainConfig` of the zoo member `name` (`<type>` or `<type>-mtf`), with `threads` if given."
    kind, _, features = name.partition('-')
    cfg = TrainConfig(model_type=kind, **({'features': features} if features else {}))
    return cfg.model_copy(update={'threads': threads}) if threads else cfg


def epoch_bench(symbol: str, timeframe: str, model_type: str, threads: int | None, epochs: int):
    "Time `epochs` training epochs of the default network of `model_type` over every window of the series."
    if model_type not in TORCH_TYPES:
        raise SystemExit(f"--model-type: one epoch is a torch model's ({', '.join(TORCH_TYPES)}); "
                         f"time {model_type} with --model-types {model_type}")
    cfg = TrainConfig(model_type=model_type)
    threads = threads or cfg.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    t = time.perf_counter()
    df = load_candles(symbol, timeframe)
    s = make_samples(df, timeframe, cfg.reads, cfg.horizon)
    mean, scale = fit_scaler(s.rows)
    ds = WindowDataset(scale_rows(s.rows, mean, scale), s.ends, s.y, cfg.reads)
    prep = time.perf_counter() - t
    print(f"{symbol} {timeframe}: {len(df):,} candles -> {len(ds):,} windows of {cfg.reads} x {s.rows.shape[1]} features "
          f"(prepared in {prep:.1f} s)")
    print(f"config: {cfg.model_type}, hidden {cfg.hidden_size}, layers {cfg.num_layers}, batch {cfg.batch_size}; "
          f"torch {torch.__version__}, {threads} threads, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    meta = dict(model_type=cfg.model_type, feature_names=s.names, window=cfg.reads, hyperparameters=cfg.model_dump())
    with seeded(cfg.seed):
        net = build_net(meta)
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        loader = window_loader(ds, cfg.batch_size, seed=cfg.seed)
        for epoch in range(1, epochs + 1):
            t = time.perf_counter()
            loss = train_epoch(net, loader, opt)
            dt = time.perf_counter() - t
            print(f"epoch {epoch}: {dt:.1f} s/epoch, {len(ds) / dt:,.0f} samples/s, loss {loss:.4f} "
                  f"({'meets' if dt <= GOAL_SECONDS else 'MISSES'} the {GOAL_SECONDS:.0f} s goal)")
    t = time.perf_counter()
    predict_windows(net, ds)
    dt = time.perf_counter() - t
    print(f"inference over all windows: {dt:.1f} s, {len(ds) / dt:,.0f} samples/s")


def zoo_row(name: str, df, symbol: str, timeframe: str, threads: int | None) -> dict:
    "Train the default model of `name` on `df`; its figures."
    cfg = zoo_config(name, threads)
    load = os.getloadavg()[0]
    t = time.perf_counter()
    m = train_model(df, cfg, symbol, timeframe, progress=False)
    wall = time.perf_counter() - t
    meta, metrics = m.meta, m.meta['metrics']
    if cfg.model_type in TORCH_TYPES:
        runs = f"{len(meta['history'])}/{cfg.epochs} ep (best {meta['best_epoch']})"
    elif cfg.model_type == 'lightgbm':
        runs = f"{meta['best_epoch']}/{cfg.n_estimators} rounds"
    else:
        runs = f"{meta['best_epoch']} iter"
    return dict(name=name, seconds=wall, runs=runs, stopped=meta['stopped'], auc=metrics['test']['roc_auc'],
                log_loss=metrics['test']['log_loss'], majority=metrics['baselines']['majority class']['log_loss'],
                calibration=meta['calibration']['method'], samples=meta['samples'], threads=cfg.threads, load=load)


def zoo_bench(symbol: str, timeframe: str, names: list[str], threads: int | None):
    "`train_model` of each default configuration in `names`, one table row each as it finishes."
    df = load_candles(symbol, timeframe)
    print(f"{symbol} {timeframe}: {len(df):,} candles; each type's default TrainConfig (max_train_seconds None, "
          f"threads {threads or TrainConfig().threads}), {os.cpu_count()} CPUs; torch {torch.__version__}\n")
    head = (f"{'type':<13} {'seconds':>8} {'epochs / rounds':<22} {'stopped':<15} {'test AUC':>8} {'test LL':>8} "
            f"{'majority LL':>11} {'LL < maj':>8} {'calibration':<11} {'load':>5}  goal <= {ZOO_GOAL_SECONDS:.0f} s")
    print(head, flush=True)
    rows = []
    for name in names:
        r = zoo_row(name, df, symbol, timeframe, threads)
        rows.append(r)
        print(f"{r['name']:<13} {r['seconds']:>8.1f} {r['runs']:<22} {r['stopped']:<15} {r['auc']:>8.4f} {r['log_loss']:>8.5f} "
              f"{r['majority']:>11.5f} {'yes' if r['log_loss'] < r['majority'] else 'NO':>8} {r['calibration']:<11} "
              f"{r['load']:>5.1f}  {'meets' if r['seconds'] <= ZOO_GOAL_SECONDS else 'MISSES'}", flush=True)
    s = rows[0]['samples'] if rows else {}
    print(f"\nsamples (first type): train {s.get('train', 0):,}, val {s.get('val', 0):,}, test {s.get('test', 0):,}; "
          f"'load' is the 1-minute load average when the type started (this machine is shared)")
    return rows


@call_parse
def main(symbol: str = 'BTCUSDT',     # bundled symbol
         timeframe: str = '1h',       # bundled timeframe
         model_type: str = 'lstm',    # one epoch: a torch type (lstm, gru, transformer, mlp)
         threads: int = None,         # torch intra-op threads (default: the config's, 1)
         epochs: int = 1,             # one epoch mode: epochs to time
         model_types: str = None):    # the zoo: 'all' or a comma list of types (e.g. lightgbm,lightgbm-mtf)
    "Time one training epoch, or (`--model-types`) whole default training runs of the zoo."
    if model_types is None: return epoch_bench(symbol, timeframe, model_type, threads, epochs)
    names = list(ZOO) if model_types == 'all' else [n.strip() for n in model_types.split(',') if n.strip()]
    if bad := [n for n in names if n not in ZOO]:
        raise SystemExit(f"--model-types: unknown {', '.join(bad)} (known: all, {', '.join(ZOO)})")
    zoo_bench(symbol, timeframe, names, threads)
