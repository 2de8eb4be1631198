"""Tests of botcore.exchange.paper on the real bundled candles (BTCUSDT 1h, ETHUSDT 5m): paper fills are the strategy's
fill model to the bit, orders are idempotent, the books add up to the trades' PnL, limit orders fill where real
candles cross them, and the replay streams in order, resumes, never serves a future candle and keeps its pace
(benchmarks/replay_bench.py times its pacing and its full speed)."""
import asyncio
import time

import numpy as np
import pandas as pd
import pytest

from botcore.config import Settings
from botcore.core import Candle, Order, OrderStatus, Position, Side, Timeframe
from botcore.data.candles import CANDLE_COLUMNS, load_candles, open_times_ms, resample_candles
from botcore.exchange.interfaces import (ExchangeError, OrderNotFound, OrderRejected, closed_candles,
                                         ohlcv_frame)
from botcore.exchange.paper import PaperExchange
from botcore.exchange.replay import ReplayMarketData
from botcore.strategy.params import StrategyParams
from botcore.strategy.rules import fill
from botcore.strategy.live import Strategy
from botcore.strategy.series import rsi_band_signals

FEE, SLIP = 0.001, 0.0005


def run(coro): return asyncio.run(coro)

def candles_of(df):
    "The rows of `df` as `Candle`s."
    ts, cols = open_times_ms(df).tolist(), [df[k].tolist() for k in CANDLE_COLUMNS]
    return [Candle(t, *row) for t, *row in zip(ts, *cols)]

def buy(qty, **kw): return Order(symbol='BTCUSDT', side='BUY', quantity=qty, **kw)
def sell(qty, **kw): return Order(symbol='BTCUSDT', side='SELL', quantity=qty, **kw)


# --- paper exchange -------------------------------------------------------------------------------------------------

def test_market_fills_are_the_strategy_fill_model_to_the_bit(btc_1h):
    closes = btc_1h.close.iloc[-300:].tolist()
    async def go():
        books = {'BUY': PaperExchange(1e7), 'SELL': PaperExchange(1e7)}          # each only opens: cash moves by the fee alone
        for i, price in enumerate(closes):
            qty, side = [0.001, 0.37, 2.5][i % 3], 'BUY' if i % 2 == 0 else 'SELL'
            ex = books[side]
            cash = ex.account.cash
            r = await ex.place_order(Order(symbol='BTCUSDT', side=side, quantity=qty), market_price=price)
            f = r.fills[0]
            assert (f.price, f.fee) == fill(price, side, qty, FEE, SLIP)        # ==, not approx
            assert (f.quantity, r.order.status, ex.account.cash) == (qty, OrderStatus.FILLED, cash - f.fee)
    run(go())


def test_market_order_uses_the_last_price_seen(btc_1h):
    c = candles_of(btc_1h.iloc[-1:])[0]
    async def go():
        ex = PaperExchange(100_000)
        ex.on_candle('BTCUSDT', c)
        r = await ex.place_order(buy(0.5))
        assert (r.fills[0].price, r.fills[0].fee) == fill(c.close, 'BUY', 0.5, FEE, SLIP)
    run(go())


def test_same_client_order_id_never_fills_twice(btc_1h):
    price = float(btc_1h.close.iloc[-1])
    async def go():
        ex = PaperExchange(10_000)
        o = buy(0.05)
        first = await ex.place_order(o, market_price=price)
        again = await ex.place_order(o, market_price=price * 1.5)
        retry = await ex.place_order(o.model_copy(update={'quantity': 0.1}))    # same id: still the first result
        together = await asyncio.gather(*(ex.place_order(o) for _ in range(5)))
        positions, balance = await ex.fetch_positions(), await ex.fetch_balance()
        return first, again, retry, together, positions, balance
    first, again, retry, together, positions, balance = run(go())
    assert again == first and retry == first and all(r == first for r in together)
    assert [p.size for p in positions] == [0.05]
    assert balance['cash'] == 10_000 - first.fills[0].fee


def test_round_trips_change_cash_by_trade_pnl_and_match_the_strategy(eth_5m):
    "The strategy's decisions over real candles, sent to a paper exchange at each close: same fills, same PnL."
    candles = eth_5m.iloc[:6_000]
    params = StrategyParams(stop_loss_pct=None, take_profit_pct=None, daily_loss_limit_pct=None, cooldown_losses=0,
                            position_size_pct=50, reverse_on_opposite=True, confidence_threshold=0.0)
    strategy = Strategy(params, 'ETHUSDT', '5m')
    sig = rsi_band_signals(candles)
    decisions = strategy.replay(candles, sig)
    assert (decisions.action == 'close').sum() > 20
    async def go():
        ex = PaperExchange.from_params(params, cash=10_000)
        checked, before_open = 0, None
        for d in decisions.itertuples():
            if d.action == 'open': before_open = ex.account.cash
            order = Order(symbol='ETHUSDT', side=d.side if d.action == 'open' else Side(d.side).opposite, quantity=d.size)
            r = await ex.place_order(order, market_price=float(candles.close.iloc[d.row]))
            assert (r.fills[0].price, r.fills[0].fee) == (d.price, d.fee)
            if d.action == 'close':
                t = ex.trades[-1]
                assert ex.account.cash - before_open == pytest.approx(t.pnl, abs=1e-9)      # the round trip: exactly its PnL
                assert t.pnl == pytest.approx(d.pnl, rel=1e-12, abs=1e-9)
                checked += 1
        return ex, checked
    ex, checked = run(go())
    flat_cash = 10_000 + sum(t.pnl for t in ex.trades)
    assert checked == (decisions.action == 'close').sum()
    assert ex.account.cash + sum(p.entry_fee for p in ex.account.positions.values()) == pytest.approx(flat_cash, abs=1e-6)
    assert strategy.account.equity == pytest.approx(flat_cash, abs=1e-6)


def test_one_round_trip_cash_is_trade_pnl(btc_1h):
    entry, exit_ = btc_1h.close.iloc[-100], btc_1h.close.iloc[-1]
    async def go():
        ex = PaperExchange(10_000, leverage=5)
        await ex.place_order(sell(0.4), market_price=entry)
        await ex.place_order(buy(0.4), market_price=exit_)
        return ex
    ex = run(go())
    t = ex.trades[-1]
    e_fill, e_fee = fill(entry, 'SELL', 0.4, FEE, SLIP)
    x_fill, x_fee = fill(exit_, 'BUY', 0.4, FEE, SLIP)
    assert (t.side, t.entry_price, t.exit_price) == (Side.SELL, e_fill, x_fill)
    assert t.fees == pytest.approx(e_fee + x_fee, rel=1e-15)
    assert ex.account.cash - 10_000 == pytest.approx(t.pnl, abs=1e-9)
    assert ex.account.positions == {}


def test_net_position_per_symbol_adds_reduces_and_flips(btc_1h):
    p1, p2, p3 = btc_1h.close.iloc[-30:-27].tolist()
    async def go():
        ex = PaperExchange(100_000, leverage=2)
        await ex.place_order(buy(0.2), market_price=p1)
        await ex.place_order(buy(0.1), market_price=p2)
        pos = (await ex.fetch_positions())[0]
        f1, f2 = fill(p1, 'BUY', 0.2, FEE, SLIP)[0], fill(p2, 'BUY', 0.1, FEE, SLIP)[0]
        assert pos.size == pytest.approx(0.3) and pos.entry_price == pytest.approx((0.2 * f1 + 0.1 * f2) / 0.3)
        await ex.place_order(sell(0.1), market_price=p3)                         # reduces
        assert (await ex.fetch_positions())[0].size == pytest.approx(0.2) and len(ex.trades) == 1
        await ex.place_order(sell(0.5), market_price=p3)                         # closes 0.2, opens 0.3 short
        pos = (await ex.fetch_positions())[0]
        assert (pos.side, pos.size, pos.entry_price) == (Side.SELL, pytest.approx(0.3), fill(p3, 'SELL', 0.5, FEE, SLIP)[0])
        assert [t.size for t in ex.trades] == [pytest.approx(0.1), pytest.approx(0.2)]
        b = await ex.fetch_balance()
        assert b['used_margin'] == pytest.approx(0.3 * pos.entry_price / 2)
        assert b['equity'] == pytest.approx(b['cash'] + pos.unrealized_pnl(p3)) and b['free'] == pytest.approx(b['equity'] - b['used_margin'])
    run(go())


def test_margin_rejection_names_the_numbers(btc_1h):
    price = float(btc_1h.close.iloc[-1])
    async def go():
        ex = PaperExchange(1_000, leverage=10)
        fp = fill(price, 'BUY', 1, FEE, SLIP)[0]
        most = 1_000 / (fp / 10 + fp * FEE)                                      # margin + fee == free, exactly at the edge
        assert (await ex.place_order(buy(most * (1 - 1e-12)), market_price=price)).order.status is OrderStatus.FILLED
        ex2 = PaperExchange(1_000, leverage=10)
        o = buy(most * 1.01)
        with pytest.raises(OrderRejected) as e:
            await ex2.place_order(o, market_price=price)
        needed = most * 1.01 * fp / 10 + fill(price, 'BUY', most * 1.01, FEE, SLIP)[1]
        assert e.value.reason == f'insufficient margin: needs {needed:,.2f} USDT, 1,000.00 free'
        assert e.value.client_order_id == o.client_order_id
        assert (await ex2.fetch_order('BTCUSDT', o.client_order_id)).status is OrderStatus.REJECTED
        with pytest.raises(OrderRejected, match='insufficient margin'):
            await ex2.place_order(o, market_price=1.0)                          # a seen id stays rejected
        assert await ex2.fetch_positions() == [] and (await ex2.fetch_balance())['cash'] == 1_000
    run(go())


def test_spot_refuses_to_go_short_but_sells_what_it_holds(btc_1h):
    price = float(btc_1h.close.iloc[-1])
    async def go():
        ex = PaperExchange(10_000, market='spot')
        with pytest.raises(OrderRejected, match='spot market: cannot sell 0.01 BTCUSDT holding 0; a spot account cannot go short'):
            await ex.place_order(sell(0.01), market_price=price)
        await ex.place_order(buy(0.1), market_price=price)
        with pytest.raises(OrderRejected, match='cannot sell 0.2 BTCUSDT holding 0.1'):
            await ex.place_order(sell(0.2), market_price=price)
        assert (await ex.place_order(sell(0.1), market_price=price)).order.status is OrderStatus.FILLED
        assert await ex.fetch_positions() == []
    run(go())
    with pytest.raises(ValueError, match='spot market trades without leverage'): PaperExchange(market='spot', leverage=3)


def test_unknown_symbol_and_unknown_price_are_rejected_by_name():
    async def go():
        ex = PaperExchange(10_000)
        with pytest.raises(OrderRejected, match="unknown symbol 'BTCEUR': not a USDT market"):
            await ex.place_order(Order(symbol='BTCEUR', side='BUY', quantity=1), market_price=1.0)
        with pytest.raises(OrderRejected, match='no price known for ETHUSDT'):
            await ex.place_order(Order(symbol='ETHUSDT', side='BUY', quantity=1))
        only = PaperExchange(10_000, symbols=['btcusdt'])
        with pytest.raises(OrderRejected, match="unknown symbol 'ETHUSDT': paper trades BTCUSDT"):
            await only.place_order(Order(symbol='ETHUSDT', side='BUY', quantity=1), market_price=3_000.0)
        with pytest.raises(OrderRejected, match='is not a price'):
            await ex.place_order(Order(symbol='ETHUSDT', side='BUY', quantity=1), market_price=float('nan'))
    run(go())


def test_limit_orders_fill_where_real_candles_cross_them(eth_5m):
    cs = candles_of(eth_5m.iloc[:2_000])
    async def go():
        ex = PaperExchange(10_000)
        ex.on_candle('ETHUSDT', cs[0])
        lo, hi = round(cs[0].close * 0.98, 2), round(cs[0].close * 1.02, 2)
        b = Order(symbol='ETHUSDT', side='BUY', type='LIMIT', quantity=1.0, price=lo)
        s = Order(symbol='ETHUSDT', side='SELL', type='LIMIT', quantity=0.5, price=hi)
        assert (await ex.place_order(b)).order.status is OrderStatus.NEW
        assert (await ex.place_order(s)).order.status is OrderStatus.NEW
        assert (await ex.fetch_balance())['used_margin'] == pytest.approx(lo * (1 + FEE) + 0.5 * hi * (1 + FEE))
        ex.on_candle('ETHUSDT', cs[0])                                           # not a later candle: fills nothing
        filled = {}
        for i, c in enumerate(cs[1:], 1):
            ex.on_candle('ETHUSDT', c)
            for o in (b, s):
                if o.client_order_id not in filled and (await ex.fetch_order('ETHUSDT', o.client_order_id)).status is OrderStatus.FILLED:
                    filled[o.client_order_id] = i
        return ex, b, s, filled
    ex, b, s, filled = run(go())
    low, high = np.array([c.low for c in cs]), np.array([c.high for c in cs])
    assert filled[b.client_order_id] == 1 + np.flatnonzero(low[1:] <= b.price)[0]
    assert filled[s.client_order_id] == 1 + np.flatnonzero(high[1:] >= s.price)[0]
    for o in (b, s):
        r = run(ex.place_order(o))
        assert (r.fills[0].price, r.fills[0].fee) == (o.price, o.quantity * o.price * FEE)   # the limit price, no slippage
    assert run(ex.fetch_open_orders()) == []


def test_cancel_works_on_resting_orders_only(eth_5m):
    c = candles_of(eth_5m.iloc[:1])[0]
    async def go():
        ex = PaperExchange(10_000)
        ex.on_candle('ETHUSDT', c)
        o = Order(symbol='ETHUSDT', side='BUY', type='LIMIT', quantity=1.0, price=round(c.close * 0.5, 2))
        await ex.place_order(o)
        assert await ex.fetch_open_orders('ETHUSDT') == [await ex.fetch_order('ETHUSDT', o.client_order_id)]
        assert (await ex.cancel_order('ETHUSDT', o.client_order_id)).status is OrderStatus.CANCELED
        assert (await ex.cancel_order('ETHUSDT', o.client_order_id)).status is OrderStatus.CANCELED   # twice: harmless
        assert (await ex.fetch_balance())['used_margin'] == 0 and await ex.fetch_open_orders() == []
        with pytest.raises(OrderNotFound): await ex.cancel_order('ETHUSDT', 'no-such-id')
        m = Order(symbol='ETHUSDT', side='BUY', quantity=0.1)
        await ex.place_order(m)
        with pytest.raises(ExchangeError, match='is FILLED: only a resting order can be canceled'):
            await ex.cancel_order('ETHUSDT', m.client_order_id)
        assert await ex.fetch_order('BTCUSDT', m.client_order_id) is None                        # wrong symbol
    run(go())


def test_state_is_restored_after_a_restart(btc_1h):
    price = float(btc_1h.close.iloc[-1])
    async def go():
        ex = PaperExchange(10_000, leverage=2)
        m = await ex.place_order(sell(0.1), market_price=price)
        lim = await ex.place_order(buy(0.05, type='LIMIT', price=round(price * 0.9, 2)))
        bal, pos = await ex.fetch_balance(), await ex.fetch_positions()
        back = PaperExchange(bal['cash'], leverage=2, positions=pos, orders=ex.order_results)
        back.on_candle('BTCUSDT', candles_of(btc_1h.iloc[-1:])[0])
        assert await back.fetch_positions() == pos
        assert await back.fetch_balance() == pytest.approx(await ex.fetch_balance())
        assert await back.place_order(m.order) == m                                 # idempotent across the restart
        assert await back.fetch_open_orders() == [lim.order]
    run(go())
    with pytest.raises(ValueError, match='one net position per symbol'):
        p = Position(symbol='BTCUSDT', side='BUY', size=1, entry_price=price)
        PaperExchange(positions=[p, p])


def test_from_params_takes_the_strategy_costs():
    "The strategy's fee, slippage, leverage and market are what the paper fills charge and allow."
    p = StrategyParams(taker_fee=0.0004, slippage=0.0002, leverage=3, market='futures')
    ex = PaperExchange.from_params(p, cash=5_000)
    r = run(ex.place_order(sell(0.1), market_price=60_000.0))                   # futures: a short is allowed
    price, fee = fill(60_000.0, 'SELL', 0.1, 0.0004, 0.0002)
    assert (r.fills[0].price, r.fills[0].fee) == (price, fee) and ex.account.cash == 5_000 - fee
    assert run(ex.fetch_balance())['used_margin'] == pytest.approx(0.1 * price / 3)


# --- helpers for a real exchange ------------------------------------------------------------------------------------

def test_ohlcv_rows_and_closed_candles(btc_1h):
    tail = btc_1h.iloc[-10:]
    rows = [[t, *r] for t, *r in zip(open_times_ms(tail).tolist(), *(tail[k].tolist() for k in CANDLE_COLUMNS))]
    frame = ohlcv_frame(rows)
    pd.testing.assert_frame_equal(frame, tail, check_freq=False)
    now = rows[-1][0] + 60_000                                                      # the last candle is still forming
    pd.testing.assert_frame_equal(closed_candles(frame, '1h', 100, now_ms=now), tail.iloc[:-1], check_freq=False)
    with pytest.raises(ValueError, match='limit=0'): closed_candles(frame, '1h', 0)


# --- replay ---------------------------------------------------------------------------------------------------------

async def collect(md, after_ms=None, probe=None):
    out = []
    async for s, c in md.stream(after_ms):
        out.append((s, c))
        if probe: await probe(s, c, len(out))
    return out


def test_replay_streams_real_candles_in_time_order_across_symbols(eth_5m):
    md = ReplayMarketData(['ETHUSDT', 'BTCUSDT'], '5m', speed=0, candles=3_000)
    got = run(collect(md))
    keys = [(c.timestamp, ['ETHUSDT', 'BTCUSDT'].index(s)) for s, c in got]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert [s for s, _ in got[:2]] == ['ETHUSDT', 'BTCUSDT']                       # the given order within a time
    eth = [c for s, c in got if s == 'ETHUSDT']
    assert len(eth) == 3_000 and eth == candles_of(eth_5m.loc[:eth[-1].open_time].iloc[-3_000:])
    assert md.now_ms == md.end_ms == eth[-1].timestamp + 300_000


def test_replay_resamples_a_symbol_bundled_only_finer_and_names_missing_timeframes():
    md = ReplayMarketData(['BTCUSDT', 'ETHUSDT'], '1h', speed=0, candles=200)
    eth = [c for s, c in run(collect(md)) if s == 'ETHUSDT']
    want = resample_candles(load_candles('ETHUSDT', '15m'), '1h', '15m')                # from the coarsest that divides 1h
    assert eth == candles_of(want.loc[:eth[-1].open_time].iloc[-len(eth):])
    with pytest.raises(ValueError, match='no common timeframe: ETHUSDT cannot make 1m candles'):
        ReplayMarketData(['BTCUSDT', 'ETHUSDT'], '1m')
    with pytest.raises(ValueError, match='no common timeframe'):
        ReplayMarketData(['BTCUSDT', 'SOLUSDT'], '1h')


def test_fetch_candles_serves_history_from_before_the_clock_only(btc_1h):
    md = ReplayMarketData('BTCUSDT', '1h', speed=0, candles=2_000, history=200)
    h = run(md.fetch_candles('BTCUSDT', 500))
    pd.testing.assert_frame_equal(h, btc_1h.iloc[-2_500:-2_000], check_freq=False)
    pd.testing.assert_frame_equal(run(md.fetch_candles('BTCUSDT', 500, until_ms=md.end_ms)), h, check_freq=False)
    with pytest.raises(ExchangeError, match="unknown symbol 'ETHUSDT'"): run(md.fetch_candles('ETHUSDT', 5))


def test_no_lookahead_while_streaming():
    md = ReplayMarketData(['BTCUSDT', 'ETHUSDT'], '5m', speed=0, candles=1_500)
    seen = {'BTCUSDT': -1, 'ETHUSDT': -1}
    async def probe(s, c, n):
        seen[s] = c.timestamp
        if n % 37: return
        for sym in seen:
            h = await md.fetch_candles(sym, 20, until_ms=md.end_ms + 10**9)
            last = int(open_times_ms(h)[-1])
            assert last + 300_000 <= md.now_ms and last <= c.timestamp             # closed, and never after the current time
            if sym == s: assert last == c.timestamp                               # the candle just streamed is history now
    run(collect(md, probe=probe))


def test_resume_after_stored_candles_gives_exactly_the_rest():
    md = ReplayMarketData(['BTCUSDT', 'ETHUSDT'], '5m', speed=0, candles=1_000)
    full = run(collect(md))
    cut_b, cut_e = full[700][1].timestamp, full[900][1].timestamp
    rest = run(collect(md, after_ms={'BTCUSDT': cut_b, 'ETHUSDT': cut_e}))
    want = [(s, c) for s, c in full if c.timestamp > {'BTCUSDT': cut_b, 'ETHUSDT': cut_e}[s]]
    assert rest == want
    async def restart():                                   # a new replay after a restart: stream first, then the history
        again = ReplayMarketData(['BTCUSDT', 'ETHUSDT'], '5m', speed=0, candles=1_000)
        it = again.stream(after_ms={'BTCUSDT': cut_b, 'ETHUSDT': cut_b})
        window = await again.fetch_candles('ETHUSDT', 300)
        return window, await anext(it)
    window, (_, first) = run(restart())
    assert (int(open_times_ms(window)[-1]), first.timestamp) == (cut_b, cut_b + 300_000)   # joined without a gap
    assert run(collect(md, after_ms={'ETHUSDT': full[-1][1].timestamp})) == [x for x in full if x[0] == 'BTCUSDT']
    with pytest.raises(ValueError, match='unknown symbol'): md.stream(after_ms={'XRPUSDT': 0})


def test_speed_paces_time_steps():
    "Never faster than `speed` steps a second (how much slower a busy machine makes it: benchmarks/replay_bench.py)."
    md = ReplayMarketData(['BTCUSDT', 'ETHUSDT'], '5m', speed=50, candles=26)      # 26 steps of two symbols: 25 gaps of 20 ms
    t = time.perf_counter()
    got = run(collect(md))
    took = time.perf_counter() - t
    assert len(got) == 52
    assert took >= 0.45, took                     # 0.5 s ideal, less the timer's early wake-ups


def test_full_speed_keeps_the_event_loop_responsive():
    md = ReplayMarketData(['BTCUSDT', 'ETHUSDT'], '5m', speed=0, candles=60_000)
    async def go():
        ticks = 0
        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)
        task = asyncio.create_task(ticker())
        n = sum([1 async for _ in md.stream()])
        task.cancel()
        return n, ticks
    n, ticks = run(go())
    assert n == 120_000
    assert ticks >= n // 256 - 1          # another task gets a turn at least every 256 candles; candles/s: replay_bench.py


def test_from_settings_and_close():
    s = Settings(market_data=dict(symbols=['ETHUSDT', 'BTCUSDT'], timeframe='15m', replay_speed=0, replay_candles=400,
                                  history_candles=150))
    md = ReplayMarketData.from_settings(s)
    assert (md.symbols, md.timeframe, md.speed, md.history) == (['ETHUSDT', 'BTCUSDT'], Timeframe.M15, 0.0, 150)
    assert len(md) == 800
    async def go():
        stream = md.stream()
        first = [await anext(stream) for _ in range(3)]
        await md.close()
        return first, [x async for x in stream]
    first, after_close = run(go())
    assert len(first) == 3 and [c.timestamp for _, c in after_close] in ([], [first[-1][1].timestamp])   # ends at the next step
