"""The studio page's own words (its controls), in every UI language, served as ``/strings.json``.

Everything the conversation says (cards, progress, errors) comes from
:mod:`handlers.i18n` through the replies; these are only the labels of the
page around it. Where the conversation already has the words (the command
descriptions, the /anime example), they are taken from there.
"""

from __future__ import annotations

from handlers.events import COMMANDS
from handlers.i18n import DERIVED, LANGUAGES, MESSAGES, in_script, t

#: key -> {language: text}; ``{name}`` placeholders are filled by the page.
PAGE: dict[str, dict[str, str]] = {
    "title": {"en": "voice2anime studio", "zh": "voice2anime 工作室"},
    "tagline": {"en": "Say it, get an anime picture.", "zh": "说出来，就变成动漫画。"},
    "tab.studio": {"en": "Studio", "zh": "创作"},
    "tab.gallery": {"en": "Gallery", "zh": "画廊"},
    "switch_language": {"en": "中文", "zh": "English"},
    "mic.idle": {"en": "🎙 Hold to talk", "zh": "🎙 按住说话"},
    "mic.hint": {"en": "or click once to start and again to send", "zh": "或点一下开始，再点一下发送"},
    "mic.recording": {
        "en": "⏺ Recording {seconds} s — release or click to send",
        "zh": "⏺ 录音中 {seconds} 秒 — 松开或再点一下发送",
    },
    "mic.sending": {"en": "Sending…", "zh": "正在发送…"},
    "mic.unavailable": {
        "en": "The microphone is not available here ({reason}). Upload an audio file instead.",
        "zh": "这里用不了麦克风（{reason}）。可以改为上传音频文件。",
    },
    "mic.insecure": {
        "en": "browsers allow the microphone only on https:// or http://127.0.0.1",
        "zh": "浏览器只在 https:// 或 http://127.0.0.1 上允许使用麦克风",
    },
    "mic.too_short": {"en": "That was too short — hold the button while you speak.", "zh": "太短了——说话时请按住按钮。"},
    "upload.audio": {"en": "🎵 Audio file", "zh": "🎵 音频文件"},
    "upload.photo": {"en": "📷 Photo", "zh": "📷 照片"},
    "upload.failed": {"en": "The upload failed ({reason}).", "zh": "上传失败（{reason}）。"},
    "drop": {"en": "Drop a voice note or a photo here", "zh": "把语音或照片拖到这里"},
    "drop.unknown": {"en": "Drop an audio file or a picture.", "zh": "请拖入音频文件或图片。"},
    "send": {"en": "Draw", "zh": "画"},
    "edit.save": {"en": "✔ Save", "zh": "✔ 保存"},
    "edit.cancel": {"en": "Cancel", "zh": "取消"},
    "download": {"en": "⬇ Download", "zh": "⬇ 下载"},
    "empty": {
        "en": "Hold the microphone button and describe a picture — in any language — or type a description below.",
        "zh": "按住麦克风按钮描述一个画面（任何语言都可以），或者在下面输入描述。",
    },
    "gallery.empty": {"en": "Your finished pictures will appear here.", "zh": "完成的作品会出现在这里。"},
    "gallery.open": {"en": "Show in the studio with its buttons", "zh": "在创作页显示（带按钮）"},
    "connection.lost": {"en": "Connection lost — reconnecting…", "zh": "连接已断开，正在重连…"},
    "login.title": {"en": "This studio needs a password.", "zh": "这个工作室需要密码。"},
    "login.password": {"en": "Password", "zh": "密码"},
    "login.submit": {"en": "Enter", "zh": "进入"},
    "login.wrong": {"en": "Wrong password.", "zh": "密码不对。"},
    "login.throttled": {"en": "Too many tries — wait a minute.", "zh": "尝试次数太多，请等一分钟。"},
}


def page_strings() -> dict[str, dict[str, str]]:
    """Every language's page words: :data:`PAGE`, the example description and the commands' descriptions."""
    strings: dict[str, dict[str, str]] = {}
    for lang in LANGUAGES:
        words = {key: _page_word(texts, lang) for key, texts in PAGE.items()}
        words["placeholder"] = t("command.anime.text", lang)
        for name in COMMANDS:
            key = f"command.{name}"
            if key in MESSAGES:
                words[key] = t(key, lang)
        strings[lang] = words
    return strings


def _page_word(texts: dict[str, str], lang: str) -> str:
    """A page word in ``lang``: its own, else made from its source language's (zh-Hant from zh), else English."""
    if lang in texts:
        return texts[lang]
    source = texts.get(DERIVED.get(lang, ""))
    return in_script(source, lang) if source else texts["en"]
