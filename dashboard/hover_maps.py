"""Both maps in one canvas, in the browser: hover a point for its thumbnail and text, see the same sample
in the other map, and lines linking the two positions of each selected sample.

Streamlit's Plotly charts report selections but not hover, and Plotly's hover labels cannot show images;
this small self-contained HTML page (no external script, no network) does what they cannot. Everything a
user wrote reaches the page as JSON data and is put on screen with ``textContent``, never as HTML.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence

import numpy as np

MAX_POINTS = 5000  # above this the hover view is left out (the Plotly maps still draw everything)
MAX_LINKS = 300

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>
body{margin:0;font:13px sans-serif;color:#222;background:transparent}
#wrap{position:relative}
canvas{display:block;width:100%;height:__HEIGHT__px;cursor:crosshair}
#card{position:absolute;display:none;pointer-events:none;background:#fff;border:1px solid #999;border-radius:4px;
padding:6px;max-width:260px;box-shadow:0 2px 6px rgba(0,0,0,.2)}
#card img{display:block;width:96px;height:96px;image-rendering:pixelated;margin-bottom:4px}
#card .id{font-weight:bold}
</style></head><body><div id="wrap"><canvas id="maps"></canvas><div id="card"><img id="thumb"><div class="id" id="cid">
</div><div id="ctext"></div></div></div><script>
const D = __DATA__;
const canvas = document.getElementById("maps"), ctx = canvas.getContext("2d");
const card = document.getElementById("card"), thumb = document.getElementById("thumb");
let hovered = -1, W = 0, H = 0, pad = 18;
function box(side){ const w = (W - 3 * pad) / 2; return {x: pad + side * (w + pad), y: 26, w: w, h: H - 26 - pad}; }
function bounds(c){ let xs = c.map(p => p[0]).filter(Number.isFinite), ys = c.map(p => p[1]).filter(Number.isFinite);
  return [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)]; }
const B = [bounds(D.a), bounds(D.b)];
const inset = 8;  // the outermost points sit inside the frame, not on it
function pos(side, i){ const c = side ? D.b[i] : D.a[i], b = B[side], r = box(side);
  if (c[0] === null || c[1] === null) return [NaN, NaN];  // left out of this map
  return [r.x + inset + (c[0] - b[0]) / ((b[1] - b[0]) || 1) * (r.w - 2 * inset),
          r.y + r.h - inset - (c[1] - b[2]) / ((b[3] - b[2]) || 1) * (r.h - 2 * inset)]; }
function draw(){
  W = canvas.clientWidth; H = canvas.clientHeight; canvas.width = W * devicePixelRatio; canvas.height = H * devicePixelRatio;
  ctx.setTransform(devicePixelRatio, 0, 0, devicePixelRatio, 0, 0); ctx.clearRect(0, 0, W, H);
  ctx.fillStyle = "#333"; ctx.fillText(D.title_a, box(0).x, 14); ctx.fillText(D.title_b, box(1).x, 14);
  const selected = new Set(D.selected);
  for (let side = 0; side < 2; side++) {
    const r = box(side); ctx.strokeStyle = "#ddd"; ctx.strokeRect(r.x, r.y, r.w, r.h);
    for (let i = 0; i < D.ids.length; i++) { const p = pos(side, i); if (!Number.isFinite(p[0])) continue;
      ctx.globalAlpha = selected.size && !selected.has(i) ? 0.15 : 0.85; ctx.fillStyle = D.colours[i];
      ctx.beginPath(); ctx.arc(p[0], p[1], 3, 0, 6.283); ctx.fill(); }
  }
  ctx.globalAlpha = 0.5; ctx.strokeStyle = "#FF4B4B";
  for (const i of D.links) { link(i); }
  ctx.globalAlpha = 1;
  if (hovered >= 0) { ctx.strokeStyle = "#000"; ctx.lineWidth = 2; link(hovered); ctx.lineWidth = 1;
    for (let side = 0; side < 2; side++) { const p = pos(side, hovered); ctx.beginPath(); ctx.arc(p[0], p[1], 7, 0, 6.283); ctx.stroke(); } }
}
function link(i){ const p = pos(0, i), q = pos(1, i); if (!Number.isFinite(p[0]) || !Number.isFinite(q[0])) return;
  ctx.beginPath(); ctx.moveTo(p[0], p[1]); ctx.lineTo(q[0], q[1]); ctx.stroke(); }
canvas.addEventListener("mousemove", e => {
  const rect = canvas.getBoundingClientRect(), x = e.clientX - rect.left, y = e.clientY - rect.top;
  let best = -1, dist = 100;
  for (let side = 0; side < 2; side++) for (let i = 0; i < D.ids.length; i++) {
    const p = pos(side, i), d = (p[0] - x) ** 2 + (p[1] - y) ** 2; if (d < dist) { dist = d; best = i; } }
  if (best !== hovered) { hovered = best; draw(); }
  if (best < 0) { card.style.display = "none"; return; }
  document.getElementById("cid").textContent = D.ids[best] + (D.labels ? " · " + D.labels[best] : "");
  document.getElementById("ctext").textContent = D.texts ? D.texts[best] : "";
  if (D.thumbs) { thumb.src = "data:image/png;base64," + D.thumbs[best]; thumb.style.display = "block"; }
  else { thumb.style.display = "none"; }
  card.style.left = Math.min(x + 14, W - 270) + "px"; card.style.top = Math.max(0, y - 20) + "px"; card.style.display = "block";
});
canvas.addEventListener("mouseleave", () => { hovered = -1; card.style.display = "none"; draw(); });
window.addEventListener("resize", draw); draw();
</script></body></html>"""


def thumbnail_png(image, size: int = 48) -> str:
    """A small PNG of a PIL image, base64 (enlarged without blurring when tiny)."""
    from PIL import Image

    image = image.convert("RGB")
    scale = size / max(image.size)
    resample = Image.Resampling.NEAREST if max(image.size) < size else Image.Resampling.LANCZOS
    small = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), resample)
    buffer = io.BytesIO()
    small.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode()


def _points(coords: np.ndarray) -> list[list[float | None]]:
    """[[x, y], ...] with None for points a map left out (NaN is not JSON; the page skips them)."""
    return [[float(v) if np.isfinite(v) else None for v in row] for row in np.asarray(coords, dtype=float)]


def hover_maps_html(
    coords_a: np.ndarray,
    coords_b: np.ndarray,
    *,
    sample_ids: Sequence[str],
    colours: Sequence[str],
    titles: tuple[str, str],
    labels: Sequence[str] | None = None,
    texts: Sequence[str] | None = None,
    thumbnails: Sequence[str] | None = None,
    selected_indices: Sequence[int] = (),
    height: int = 460,
) -> str:
    """The page (see the module docstring); ``coords_*`` [n, 2], point i = sample i in both maps;
    ``thumbnails``: one base64 PNG per sample (:func:`thumbnail_png`)."""
    selected = sorted({int(i) for i in selected_indices})
    data = {
        "a": _points(coords_a),
        "b": _points(coords_b),
        "ids": list(sample_ids),
        "colours": list(colours),
        "labels": None if labels is None else [str(label) for label in labels],
        "texts": None if texts is None else [str(text)[:300] for text in texts],
        "thumbs": None if thumbnails is None else list(thumbnails),
        "selected": selected,
        "links": selected[:MAX_LINKS],
        "title_a": titles[0],
        "title_b": titles[1],
    }
    blob = json.dumps(data).replace("</", "<\\/")  # no "</script>" in the data can close the script
    return _PAGE.replace("__DATA__", blob).replace("__HEIGHT__", str(int(height)))
