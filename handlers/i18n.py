"""Every user-facing string, in English and Chinese.

``t(key, lang, **params)`` formats one; :func:`pick_language` chooses the
language from the user's setting, else the platform locale, else English.
Engine errors carry a message key (``engine.errors.UserError.key``) that is
looked up here too.
"""

from __future__ import annotations

from collections.abc import Mapping

LANGUAGES = ("en", "zh")

MESSAGES: dict[str, dict[str, str]] = {
    # --- commands ---
    "start": {
        "en": "Hi {name}! Send me a voice note describing a picture — in any language — and I'll draw it in anime style.\n"
        "You can also type /anime <description> or send a photo to restyle it.\nType /help for more.",
        "zh": "你好 {name}！发一条语音描述你想要的画面（任何语言都可以），我会把它画成动漫风格。\n"
        "也可以输入 /anime <描述>，或者发一张照片让我转换成动漫风格。\n输入 /help 查看更多。",
    },
    "help": {
        "en": "How to use me:\n"
        "• Voice note → I show what I heard → Confirm, Edit, or Cancel\n"
        "• /anime <text> — draw a description\n"
        "• Photo → restyled in anime style\n"
        "• /style — pick your default style\n"
        "• /history — your last pictures\n"
        "• /settings — language, default style, confirm before drawing\n"
        "• /cancel — stop what is running",
        "zh": "使用方法：\n"
        "• 发语音 → 我显示听到的内容 → 确认、修改或取消\n"
        "• /anime <描述> — 按文字作画\n"
        "• 发照片 → 转换成动漫风格\n"
        "• /style — 选择默认风格\n"
        "• /history — 最近的作品\n"
        "• /settings — 语言、默认风格、作画前确认\n"
        "• /cancel — 停止正在进行的任务",
    },
    "command.start": {"en": "What this bot does", "zh": "这个机器人能做什么"},
    "command.help": {"en": "How to use it", "zh": "使用帮助"},
    "command.anime": {"en": "Draw a description: /anime <text>", "zh": "按文字作画：/anime <描述>"},
    "command.style": {"en": "Pick your default style", "zh": "选择默认风格"},
    "command.history": {"en": "Your last pictures", "zh": "最近的作品"},
    "command.settings": {"en": "Language, style, confirm before drawing", "zh": "语言、风格、作画前确认"},
    "command.cancel": {"en": "Stop what is running", "zh": "停止正在进行的任务"},
    "command.anime.text": {
        "en": "What to draw, e.g. a girl with blue hair under cherry blossoms",
        "zh": "要画什么，例如：樱花树下蓝色头发的女孩",
    },
    "command.anime.style": {"en": "Anime style for this picture", "zh": "这张图的动漫风格"},
    "guild.not_allowed": {"en": "This bot is not enabled in this server.", "zh": "这个服务器没有启用本机器人。"},
    "anime.usage": {
        "en": "Tell me what to draw, e.g. /anime a girl with blue hair under cherry blossoms",
        "zh": "请告诉我要画什么，例如：/anime 樱花树下蓝色头发的女孩",
    },
    "unknown_command": {"en": "I don't know that command. Type /help.", "zh": "我不认识这个命令。输入 /help 查看帮助。"},
    "text.hint": {
        "en": "Send me a voice note, or type /anime <description>.",
        "zh": "发一条语音给我，或者输入 /anime <描述>。",
    },
    # --- voice and the confirmation card ---
    "transcribing": {"en": "🎧 Listening…", "zh": "🎧 正在听…"},
    "card.heard": {"en": "I heard ({language}, {confidence:.0%} sure):", "zh": "我听到的是（{language}，把握 {confidence:.0%}）："},
    "card.typed": {"en": "You asked for:", "zh": "你的描述："},
    "card.unsure": {"en": "Words in [brackets] are ones I'm unsure of.", "zh": "[方括号] 里是我不太确定的词。"},
    "card.quote": {"en": "“{text}”", "zh": "“{text}”"},
    "card.understood": {"en": "What I'll draw:", "zh": "我理解的画面："},
    "card.field": {"en": "• {label}: {value}", "zh": "• {label}：{value}"},
    "card.list_separator": {"en": ", ", "zh": "、"},
    "card.subject": {"en": "Who/what", "zh": "主体"},
    "card.attributes": {"en": "Looks", "zh": "外观"},
    "card.action": {"en": "Doing", "zh": "动作"},
    "card.scene": {"en": "Where/when", "zh": "场景"},
    "card.prompt": {"en": "Prompt for the model (English)", "zh": "给模型的英文提示词"},
    "card.style": {"en": "Style", "zh": "风格"},
    "card.superseded": {"en": "↪ This card was replaced by a newer one below.", "zh": "↪ 这张卡片已更新，请看下面的新卡片。"},
    "button.details": {"en": "🔍 Details", "zh": "🔍 详情"},
    "button.hide_details": {"en": "🔼 Hide details", "zh": "🔼 收起详情"},
    "card.question": {"en": "Shall I draw it?", "zh": "要开始画吗？"},
    "card.expired": {
        "en": "This card has expired. Send the voice note again.",
        "zh": "这张卡片已过期，请重新发送语音。",
    },
    "button.confirm": {"en": "✅ Draw it", "zh": "✅ 开始画"},
    "button.edit": {"en": "✏️ Edit", "zh": "✏️ 修改"},
    "button.retry_language": {"en": "🔁 Heard wrong language", "zh": "🔁 语言识别错了"},
    "button.style": {"en": "🎨 Style", "zh": "🎨 风格"},
    "button.cancel": {"en": "✖️ Cancel", "zh": "✖️ 取消"},
    "button.restyle": {"en": "🎨 Restyle", "zh": "🎨 换风格"},
    "button.reroll": {"en": "🎲 Reroll", "zh": "🎲 重新生成"},
    "button.base": {"en": "🖼 Original", "zh": "🖼 原图"},
    "button.resend": {"en": "📨 #{index}", "zh": "📨 #{index}"},
    "button.on": {"en": "✅ {label}", "zh": "✅ {label}"},
    "edit.prompt": {
        "en": "Send me the corrected description (reply to this message).",
        "zh": "请发送修改后的描述（回复这条消息）。",
    },
    "edit.title": {"en": "Correct the description", "zh": "修改描述"},
    "retry.choose": {"en": "Which language did you speak?", "zh": "你说的是哪种语言？"},
    "style.choose": {"en": "Pick a style:", "zh": "选择一种风格："},
    "style.set": {"en": "Style set to {style}.", "zh": "风格已设为「{style}」。"},
    "language.en": {"en": "English", "zh": "英语"},
    "language.zh": {"en": "Mandarin", "zh": "普通话"},
    "language.yue": {"en": "Cantonese", "zh": "粤语"},
    # --- jobs ---
    "queued": {"en": "⏳ In the queue… #{position}", "zh": "⏳ 排队中… 第 {position} 位"},
    "queued.waiting": {"en": "⏳ In the queue…", "zh": "⏳ 排队中…"},
    "generating": {"en": "🖌 Drawing… {percent}%", "zh": "🖌 作画中… {percent}%"},
    "styling": {"en": "🎨 Applying the anime style…", "zh": "🎨 正在转换动漫风格…"},
    "progress.sending": {"en": "📤 Sending…", "zh": "📤 正在发送…"},
    "progress.done": {"en": "✅ Done — your picture is below.", "zh": "✅ 画好了，成品在下面。"},
    "progress.done_sketch": {
        "en": "✏️ The sketch, before the anime style. ✅ Done — your picture is below.",
        "zh": "✏️ 这是转换动漫风格之前的草图。✅ 画好了，成品在下面。",
    },
    "delivered": {"en": "Style: {style} · seed {seed}", "zh": "风格：{style} · 种子 {seed}"},
    "delivered.photo": {"en": "Style: {style}", "zh": "风格：{style}"},
    "base_image": {"en": "The original picture before styling.", "zh": "风格转换前的原图。"},
    "cancelled": {"en": "Cancelled.", "zh": "已取消。"},
    "cancel.nothing": {"en": "Nothing to cancel.", "zh": "没有可以取消的任务。"},
    "already_handled": {"en": "Already done.", "zh": "已经处理过了。"},
    "not_ready": {"en": "That picture isn't finished yet.", "zh": "这张图还没画好。"},
    "not_yours": {"en": "Only the person who asked can use these buttons.", "zh": "只有发起请求的人才能使用这些按钮。"},
    "job.failed": {"en": "Sorry, that picture failed. Please try again.", "zh": "抱歉，作画失败了，请再试一次。"},
    "delivery.failed": {
        "en": "Your picture is ready, but I couldn't send it. Press “Send again” — I'll also retry when I restart.",
        "zh": "图已经画好了，但发送失败。请点「重新发送」——我重启后也会再试。",
    },
    "button.send_again": {"en": "📤 Send again", "zh": "📤 重新发送"},
    "job.lost": {
        "en": "Sorry, I restarted and lost your picture request. Please send it again.",
        "zh": "抱歉，我刚刚重启，丢失了你的作画请求，请重新发送。",
    },
    "rate_limited": {
        "en": "You're sending requests too fast. Please wait a minute.",
        "zh": "你的请求太频繁了，请稍等一分钟。",
    },
    # --- history and settings ---
    "history.empty": {"en": "No pictures yet. Send me a voice note!", "zh": "还没有作品。发一条语音给我吧！"},
    "history.title": {"en": "Your last pictures:", "zh": "你最近的作品："},
    "history.entry": {"en": "#{index} {description} · {style} · {date}", "zh": "#{index} {description} · {style} · {date}"},
    "history.photo": {"en": "📷 your photo", "zh": "📷 你的照片"},
    "history.gone": {"en": "That picture is no longer available.", "zh": "这张图片已经不存在了。"},
    "settings.title": {
        "en": "Settings\nLanguage: {language}\nDefault style: {style}\nConfirm before drawing: {confirm}",
        "zh": "设置\n语言：{language}\n默认风格：{style}\n作画前确认：{confirm}",
    },
    "settings.language": {"en": "🌐 中文 / English", "zh": "🌐 中文 / English"},
    "settings.language_auto": {"en": "automatic (follows your app: {current})", "zh": "自动（跟随应用：{current}）"},
    "ui_language.en": {"en": "English", "zh": "English"},
    "ui_language.zh": {"en": "中文", "zh": "中文"},
    "settings.confirm_on": {"en": "on", "zh": "开"},
    "settings.confirm_off": {"en": "off", "zh": "关"},
    "settings.toggle_confirm": {"en": "Confirm on/off", "zh": "切换作画前确认"},
    "settings.saved": {"en": "Saved.", "zh": "已保存。"},
    # --- content policy (engine.policy) ---
    "policy.refused": {
        "en": "The content policy ({level}) does not allow this description: {reasons}.",
        "zh": "内容尺度（{level}）不允许这个描述：{reasons}。",
    },
    "policy.refused_here": {"en": "🚫 I can't draw that in this chat: {reasons}.", "zh": "🚫 在这个聊天里不能画这个：{reasons}。"},
    "policy.reason": {"en": "“{words}” ({category})", "zh": "“{words}”（{category}）"},
    "policy.reason_separator": {"en": "; ", "zh": "；"},
    "policy.misheard": {
        "en": "If I misheard you, press ✏️ Edit and correct it.",
        "zh": "如果是我听错了，请点「✏️ 修改」更正。",
    },
    "policy.edit_hint": {"en": "Press ✏️ Edit to change the description.", "zh": "请点「✏️ 修改」换一个描述。"},
    "policy.category.sexual": {"en": "sexual content", "zh": "色情内容"},
    "policy.category.suggestive": {"en": "suggestive content", "zh": "性暗示内容"},
    "policy.category.gore": {"en": "gore", "zh": "血腥内容"},
    "policy.category.violence": {"en": "graphic violence", "zh": "暴力内容"},
    "policy.category.hate": {"en": "hate symbols or slurs", "zh": "仇恨内容"},
    "policy.category.sexual_minors": {"en": "sexual content with children", "zh": "涉及儿童的色情内容"},
    "policy.category.negated": {"en": "leaving clothes out", "zh": "去掉衣物"},
    "policy.category.other": {"en": "not allowed here", "zh": "此处不允许"},
    "policy.image_flagged": {
        "en": "🚫 I drew it, but the picture did not pass this chat's content check, so I won't send it. Try another description.",
        "zh": "🚫 图画好了，但没有通过本聊天的内容检查，所以不发送。请换一个描述试试。",
    },
    "policy.photo_flagged": {
        "en": "🚫 That photo did not pass this chat's content check, so I won't restyle it.",
        "zh": "🚫 这张照片没有通过本聊天的内容检查，所以不做风格转换。",
    },
    "policy.spoiler": {
        "en": "⚠️ The content check flagged this picture: it is hidden behind a spoiler.",
        "zh": "⚠️ 内容检查认为这张图可能不适宜，已加上遮挡。",
    },
    "policy.level.strict": {"en": "strict — for everyone; pictures are checked", "zh": "严格——适合所有人；图片会检查"},
    "policy.level.standard": {
        "en": "standard — nothing explicit; flagged pictures come behind a spoiler",
        "zh": "标准——不画露骨内容；可疑图片加遮挡",
    },
    "policy.level.off": {"en": "off — age-restricted chat", "zh": "关闭——仅限成人频道"},
    "settings.policy": {"en": "Content policy: {level}", "zh": "内容尺度：{level}"},
    # --- engine errors (engine.errors.UserError.key) ---
    "error.generic": {"en": "Something went wrong. Please try again.", "zh": "出了点问题，请再试一次。"},
    "audio.unreadable": {
        "en": "I couldn't read that audio file. Please send a voice note or an OGG/MP3/M4A/WAV file.",
        "zh": "无法读取这个音频文件。请发送语音消息或 OGG/MP3/M4A/WAV 文件。",
    },
    "audio.empty": {"en": "That audio file is empty. Please record the voice note again.", "zh": "这个音频是空的，请重新录一条语音。"},
    "audio.unsupported": {
        "en": "That doesn't look like audio. Please send a voice note or an OGG/MP3/M4A/WAV file.",
        "zh": "这看起来不是音频。请发送语音消息或 OGG/MP3/M4A/WAV 文件。",
    },
    "audio.too_large": {
        "en": "That file is too big ({size_mb:.1f} MB). The limit is {limit_mb:.1f} MB.",
        "zh": "文件太大（{size_mb:.1f} MB），上限是 {limit_mb:.1f} MB。",
    },
    "audio.too_long": {
        "en": "That voice note is {seconds:.0f} s long. Please keep it under {limit:.0f} s.",
        "zh": "这条语音有 {seconds:.0f} 秒，请控制在 {limit:.0f} 秒以内。",
    },
    "audio.no_speech": {
        "en": "I couldn't hear any words in that voice note. Please speak closer to the microphone and try again.",
        "zh": "这条语音里没有听到说话声。请靠近麦克风再试一次。",
    },
    "text.too_long": {
        "en": "That description is too long ({length} characters). Please keep it under {limit}.",
        "zh": "描述太长了（{length} 个字符），请控制在 {limit} 个字符以内。",
    },
    "text.empty": {
        "en": "Please describe the picture you want, e.g. “a girl with blue hair under cherry blossoms”.",
        "zh": "请描述你想要的画面，例如“樱花树下蓝色头发的女孩”。",
    },
    "image.unreadable": {
        "en": "I couldn't read that image. Please send a JPEG, PNG or WebP photo.",
        "zh": "无法读取这张图片。请发送 JPEG、PNG 或 WebP 格式的照片。",
    },
    "image.too_large": {
        "en": "That picture is too big ({size_mb:.1f} MB). The limit is {limit_mb:.1f} MB.",
        "zh": "图片太大（{size_mb:.1f} MB），上限是 {limit_mb:.1f} MB。",
    },
    "image.too_many_pixels": {
        "en": "That picture is too large ({width}×{height} px). Send one up to {limit_mp:g} megapixels.",
        "zh": "图片尺寸太大（{width}×{height} 像素），请发送不超过 {limit_mp:g} 百万像素的图片。",
    },
    "style.unknown": {"en": "Unknown style “{style}”. Available: {styles}.", "zh": "没有“{style}”这种风格。可选：{styles}。"},
    "queue.full": {
        "en": "I'm very busy right now ({limit} pictures waiting). Please try again in a few minutes.",
        "zh": "现在太忙了（{limit} 张图片在排队），请过几分钟再试。",
    },
    "queue.user_full": {
        "en": "You already have {limit} pictures waiting. Please wait for them (or /cancel one) first.",
        "zh": "你已经有 {limit} 张图片在排队了，请先等待（或用 /cancel 取消）。",
    },
}


def pick_language(setting: str | None, locale: str | None) -> str:
    """The user's chosen language, else the platform locale's (zh-*, yue -> zh), else English."""
    if setting in LANGUAGES:
        return setting
    if locale and locale.lower().split("-")[0].split("_")[0] in ("zh", "yue"):
        return "zh"
    return "en"


def t(key: str, lang: str, **params: object) -> str:
    """The message ``key`` in ``lang`` (falls back to English), formatted with ``params``."""
    texts = MESSAGES[key]
    return texts.get(lang, texts["en"]).format(**params)


def error_text(key: str, lang: str, params: Mapping[str, object] | None = None) -> str:
    """The message for an error ``key``; the generic one when the key is unknown or its ``params`` are missing.

    Engine failures that cross a thread or process (``JobFailed``) carry only
    their key, so a parameterised message must degrade, not crash.
    """
    try:
        return t(key, lang, **(params or {}))
    except (KeyError, IndexError, ValueError):
        return t("error.generic", lang)
