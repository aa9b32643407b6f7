"""The page a record's QR code opens: one answer, nothing the asker does not already hold.

What it may say is decided by :func:`hsdt.archive.public.public_answer` (minimal disclosure);
this module only lays it out, escaped, for a phone screen.
"""

from __future__ import annotations

from html import escape

from hsdt.archive.public import PublicAnswer

_TITLES = {
    "current": ("Hồ sơ hợp lệ", "#1b5e20"),
    "superseded": ("Hồ sơ đã được thay thế", "#8d6e00"),
    "not_found": ("Không tìm thấy hồ sơ", "#555"),
    "not_authentic": ("Không xác nhận được hồ sơ", "#b71c1c"),
}


def public_html(record_id: str, answer: PublicAnswer) -> str:
    title, colour = _TITLES.get(answer.status, ("Kết quả xác minh", "#333"))
    facts = "".join(f"<dt>{escape(label)}</dt><dd>{escape(value)}</dd>"
                    for label, value in answer.facts())
    return f"""<!doctype html>
<html lang="vi"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} — Xác minh hồ sơ điện tử</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;color:#222}}
h1{{color:{colour};font-size:1.4rem}} dt{{font-weight:600;margin-top:.6rem}} dd{{margin:0}}
code{{word-break:break-all;font-size:.85rem;color:#555}}</style></head>
<body><h1>{escape(title)}</h1><p>{escape(answer.message)}</p>
<dl>{facts}</dl><p>Mã hồ sơ: <code>{escape(record_id)}</code></p></body></html>
"""
