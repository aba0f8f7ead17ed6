"""The studio page's own words (its controls), in every UI language, served as ``/strings.json``.

Everything the conversation says (cards, progress, errors) comes from
:mod:`handlers.i18n` through the replies; these are only the labels of the
page around it. They go through the chat's own mechanism: English and
Simplified Chinese are written here, Traditional Chinese (``zh-Hant``) is made
from the Simplified text with OpenCC like every chat message
(:func:`handlers.i18n.in_script`), unless a text has its own ``"zh-Hant"``.
Where the conversation already has the words (the command descriptions, the
/anime example, "Language"), they are taken from there, and the few chat
templates the page recognises in the replies (``chat.*``: the quote marks of a
description, "Done", "Cancelled") are passed on unformatted.

A key ending in ``.touch`` is the wording for touch screens (``pointer: coarse``):
"tap", never "click".
"""

from __future__ import annotations

from handlers.events import COMMANDS
from handlers.i18n import DERIVED, LANGUAGES, MESSAGES, in_script, t, template

#: key -> {language: text}; ``{name}`` placeholders are filled by the page.
PAGE: dict[str, dict[str, str]] = {
    "title": {"en": "voice2anime studio", "zh": "voice2anime 工作室"},
    "tagline": {"en": "Say it, get an anime picture.", "zh": "说出来，就变成动漫画。"},
    "tab.studio": {"en": "Studio", "zh": "创作"},
    "tab.gallery": {"en": "Gallery", "zh": "画廊"},
    "mic.idle": {"en": "🎙 Hold to talk", "zh": "🎙 按住说话"},
    "mic.hint": {"en": "or click once to start, again to send", "zh": "或点一下开始，再点一下发送"},
    "mic.hint.touch": {"en": "or tap once to start, again to send", "zh": "或轻触一下开始，再轻触一下发送"},
    "mic.keys": {
        "en": "Space or Enter: hold to talk, or press once to start and again to send. Esc discards the recording.",
        "zh": "空格或回车：按住说话，或按一下开始、再按一下发送。Esc 放弃录音。",
    },
    "mic.hold": {"en": "⏺ Recording — release to send", "zh": "⏺ 录音中——松开发送"},
    "mic.toggle": {"en": "⏹ Recording — click to send", "zh": "⏹ 录音中——点一下发送"},
    "mic.toggle.touch": {"en": "⏹ Recording — tap to send", "zh": "⏹ 录音中——轻触发送"},
    "mic.sending": {"en": "Sending…", "zh": "正在发送…"},
    "mic.unavailable": {
        "en": "The microphone is not available here ({reason}). Upload an audio file instead.",
        "zh": "这里用不了麦克风（{reason}）。可以改为上传音频文件。",
    },
    "mic.insecure": {
        "en": "browsers allow the microphone only on https:// or http://127.0.0.1",
        "zh": "浏览器只在 https:// 或 http://127.0.0.1 上允许使用麦克风",
    },
    "mic.denied": {
        "en": "The browser is blocking the microphone for this page. Click the icon at the left of the address bar"
        " (🔒 or 🎙), allow the microphone, then try again — or upload an audio file.",
        "zh": "浏览器禁止了这个页面使用麦克风。点地址栏左边的图标（🔒 或 🎙），允许使用麦克风，然后再试一次——或者上传音频文件。",
    },
    "mic.denied.touch": {
        "en": "The browser is blocking the microphone for this page. Tap the icon at the left of the address bar"
        " (🔒 or ⓘ), allow the microphone under its permissions, then try again — or upload an audio file.",
        "zh": "浏览器禁止了这个页面使用麦克风。轻触地址栏左边的图标（🔒 或 ⓘ），在权限里允许使用麦克风，然后再试一次——或者上传音频文件。",
    },
    "mic.missing": {
        "en": "No microphone was found. Plug one in (or switch it on in your system's sound settings),"
        " then try again — or upload an audio file.",
        "zh": "没有找到麦克风。请接上麦克风（或在系统的声音设置里启用它），然后再试一次——或者上传音频文件。",
    },
    "mic.busy": {
        "en": "Another program is using the microphone. Close it, then try again — or upload an audio file.",
        "zh": "另一个程序正在使用麦克风。请先关掉它再试一次——或者上传音频文件。",
    },
    "mic.too_short": {"en": "That was too short — hold the button while you speak.", "zh": "太短了——说话时请按住按钮。"},
    "recorder.label": {"en": "Recording", "zh": "录音"},
    "recorder.listen": {"en": "▶ Listen", "zh": "▶ 试听"},
    "recorder.send": {"en": "📤 Send", "zh": "📤 发送"},
    "recorder.discard": {"en": "✖ Discard", "zh": "✖ 放弃"},
    "recorder.discarded": {"en": "Recording discarded.", "zh": "已放弃这段录音。"},
    "recorder.limit": {
        "en": "Stopped at the {seconds} s limit — listen, then send or discard it.",
        "zh": "已到 {seconds} 秒上限，录音停止了——听一下，再发送或放弃。",
    },
    "upload.audio": {"en": "Audio file", "zh": "音频文件"},
    "upload.photo": {"en": "Photo", "zh": "照片"},
    "upload.failed": {"en": "The upload failed ({reason}).", "zh": "上传失败（{reason}）。"},
    "upload.busy": {
        "en": "The studio is still receiving other uploads — send this one in a moment.",
        "zh": "工作室还在接收其他上传，请稍后再发。",
    },
    "upload.stalled": {"en": "The upload stopped arriving, so it was dropped. Try again.", "zh": "上传中断了，已放弃。请再试一次。"},
    "connections.busy": {
        "en": "The studio has too many connections open right now. Try again in a moment.",
        "zh": "工作室现在的连接太多了，请稍后再试。",
    },
    "mine.voice": {"en": "Your voice note", "zh": "你的语音"},
    "mine.photo": {"en": "Your photo", "zh": "你的照片"},
    "drop": {"en": "Drop a voice note or a photo here", "zh": "把语音或照片拖到这里"},
    "drop.unknown": {"en": "Drop an audio file or a picture.", "zh": "请拖入音频文件或图片。"},
    "send": {"en": "Draw", "zh": "画"},
    "edit.save": {"en": "✔ Save", "zh": "✔ 保存"},
    "edit.cancel": {"en": "Cancel", "zh": "取消"},
    "download": {"en": "⬇ Download", "zh": "⬇ 下载"},
    "picture.alt": {"en": "Your picture in anime style", "zh": "动漫风格的作品"},
    "fix.title": {"en": "🛠 For you as this studio's operator — what to do:", "zh": "🛠 给这个工作室的管理员（就是你）——怎么做："},
    "fix.after": {
        "en": "Then press 🔁 Retry: nothing you said is lost. (Restart voice2anime run only if you changed a setting.)",
        "zh": "然后点「🔁 重试」：你说的内容都还在。（只有改了设置才需要重启 voice2anime run。）",
    },
    "picture.reveal": {"en": "Show the hidden picture", "zh": "显示被遮挡的图片"},
    "ready.title": {"en": "✅ Your picture is ready", "zh": "✅ 你的画好了"},
    "empty": {
        "en": "Hold the microphone button and describe a picture — in any language — or type a description below.",
        "zh": "按住麦克风按钮描述一个画面（任何语言都可以），或者在下面输入描述。",
    },
    "gallery.empty": {"en": "Your finished pictures will appear here.", "zh": "完成的作品会出现在这里。"},
    "gallery.open": {"en": "Show in the studio with its buttons", "zh": "在创作页显示（带按钮）"},
    "gallery.more": {"en": "Show older pictures", "zh": "显示更早的作品"},
    "connection.lost": {"en": "Connection lost — reconnecting…", "zh": "连接已断开，正在重连…"},
    "login.title": {"en": "This studio needs a password.", "zh": "这个工作室需要密码。"},
    "login.password": {"en": "Password", "zh": "密码"},
    "login.submit": {"en": "Enter", "zh": "进入"},
    "login.wrong": {"en": "Wrong password.", "zh": "密码不对。"},
    "login.throttled": {"en": "Too many tries — wait a minute.", "zh": "尝试次数太多，请等一分钟。"},
}

#: Page words that are the chat's own: page key -> catalog key.
FROM_CHAT = {"placeholder": "command.anime.text", "language.label": "settings.language_label"}
#: Chat templates the page recognises in the replies, sent unformatted as ``chat.<key>``.
CHAT_TEMPLATES = ("card.quote", "progress.done", "cancelled")


def page_strings() -> dict[str, dict[str, str]]:
    """Every language's page words: :data:`PAGE`, the chat's words it shares and the commands' descriptions."""
    strings: dict[str, dict[str, str]] = {}
    for lang in LANGUAGES:
        words = {key: _page_word(texts, lang) for key, texts in PAGE.items()}
        words |= {key: t(source, lang) for key, source in FROM_CHAT.items()}
        words |= {f"chat.{key}": template(key, lang) for key in CHAT_TEMPLATES}
        for name in COMMANDS:
            key = f"command.{name}"
            if key in MESSAGES:
                words[key] = t(key, lang)
        strings[lang] = words
    return strings


def page_word(key: str, lang: str) -> str:
    """Page word ``key`` in ``lang`` (for what the server itself says about the page's uploads and connections)."""
    return _page_word(PAGE[key], lang)


def _page_word(texts: dict[str, str], lang: str) -> str:
    """A page word in ``lang``: its own, else made from its source language's (zh-Hant from zh), else English."""
    if lang in texts:
        return texts[lang]
    source = texts.get(DERIVED.get(lang, ""))
    return in_script(source, lang) if source else texts["en"]
