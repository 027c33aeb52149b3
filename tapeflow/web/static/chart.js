// Candlesticks over volume bars on a canvas. Prices are parsed to numbers here only to place
// pixels; every number shown on the page is the exact string the server sent.
"use strict";

const Chart = {
  UP: "#26a69a",
  DOWN: "#ef5350",

  candles(canvas, rows) {
    const ctx = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height, priceH = H * 0.72, pad = 50;
    ctx.clearRect(0, 0, W, H);
    if (!rows.length) {
      ctx.fillStyle = "#7b8794";
      ctx.fillText("no candles in this interval yet", pad, 30);
      return;
    }
    const lows = rows.map((r) => Number(r.low)), highs = rows.map((r) => Number(r.high));
    const lo = Math.min(...lows), hi = Math.max(...highs), span = hi - lo || hi * 1e-4 || 1;
    const vmax = Math.max(...rows.map((r) => Number(r.volume))) || 1;
    const step = (W - pad * 2) / Math.max(rows.length, 20);
    const body = Math.max(1, Math.min(14, step * 0.7));
    const y = (p) => 10 + (priceH - 20) * (1 - (p - lo) / span);
    ctx.strokeStyle = "#e3e7ec";
    ctx.fillStyle = "#52606d";
    for (let i = 0; i <= 4; i++) {
      const p = lo + (span * i) / 4, py = y(p);
      ctx.beginPath(); ctx.moveTo(pad, py); ctx.lineTo(W - pad, py); ctx.stroke();
      ctx.fillText(p.toPrecision(8), 2, py + 3);
    }
    rows.forEach((r, i) => {
      const o = Number(r.open), c = Number(r.close), x = pad + i * step + step / 2;
      const colour = c >= o ? Chart.UP : Chart.DOWN;
      ctx.strokeStyle = colour;
      ctx.fillStyle = colour;
      ctx.beginPath(); ctx.moveTo(x, y(Number(r.high))); ctx.lineTo(x, y(Number(r.low)));
      ctx.stroke();
      const top = y(Math.max(o, c)), height = Math.max(1, Math.abs(y(o) - y(c)));
      ctx.fillRect(x - body / 2, top, body, height);
      const vh = (H - priceH - 12) * (Number(r.volume) / vmax);
      ctx.globalAlpha = 0.6;
      ctx.fillRect(x - body / 2, H - vh, body, vh);
      ctx.globalAlpha = 1;
    });
    canvas.dataset.candles = String(rows.length);
    canvas.dataset.last = rows[rows.length - 1].bucket;
  },
};
