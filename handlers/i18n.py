"""Every user-facing string, in English, Chinese (Simplified) and Chinese (Traditional).

``t(key, lang, **params)`` formats one; :func:`pick_language` chooses the
language from the user's setting, else the platform locale, else English.
Engine errors carry a message key (``engine.errors.UserError.key``) that is
looked up here too.

The Traditional texts (``zh-Hant``) are made from the Simplified ones when
first used, with OpenCC ``s2twp`` (Taiwan characters and wording: 设置 ->
設定, 默认 -> 預設); a text that must not be converted (a language's own
name) is written out in :data:`MESSAGES` under ``"zh-Hant"``. Converting at
first use rather than committing a generated table means a new Chinese
string is never missing its Traditional form; OpenCC's dictionaries load
only in processes that show Traditional text.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from engine.language.chinese import Script, script_for, taiwan_phrasing

#: The UI languages: English, Chinese in Simplified characters ("zh") and in Traditional ones ("zh-Hant").
LANGUAGES = ("en", "zh", "zh-Hant")
#: UI languages whose texts are made from another one's, where :data:`MESSAGES` has none of their own.
DERIVED = {"zh-Hant": "zh"}

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
        "• Send a voice note or /anime <description> → I show what I understood → {confirm}, {edit} or {cancel}\n"
        "• Photo → restyled in anime style\n"
        "• /style — pick your default style\n"
        "• /history — your last pictures\n"
        "• {settings}\n"
        "• /cancel — stop what is running",
        "zh": "使用方法：\n"
        "• 发语音或输入 /anime <描述> → 我显示理解的画面 → {confirm}、{edit} 或 {cancel}\n"
        "• 发照片 → 转换成动漫风格\n"
        "• /style — 选择默认风格\n"
        "• /history — 最近的作品\n"
        "• {settings}\n"
        "• /cancel — 停止正在进行的任务",
    },
    "help.settings": {
        "en": "/settings — language, default style, confirm before drawing",
        "zh": "/settings — 语言、默认风格、作画前确认",
    },
    "help.settings_group": {
        "en": "/settings — your own language and style; for admins also this chat's language and confirm before drawing",
        "zh": "/settings — 你自己的语言和风格；管理员还可以设置这里的语言和作画前确认",
    },
    "help.group": {
        "en": "In groups and server channels I only answer when called: mention me (@ and my name) or reply to one of my "
        "messages — with a voice note, a photo or text — or use /anime <description>. Other messages I leave alone.",
        "zh": "在群组和服务器频道里，我只回应叫我的消息：提到我（@ 加上我的名字）或回复我的消息（语音、照片或文字都可以），"
        "或者使用 /anime <描述>。其他消息我不会理会。",
        # OpenCC writes 頻道里 here (里 as in a distance); 裡 is "inside".
        "zh-Hant": "在群組和伺服器頻道裡，我只回應叫我的訊息：提到我（@ 加上我的名字）或回覆我的訊息（語音、照片或文字都可以），"
        "或者使用 /anime <描述>。其他訊息我不會理會。",
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
    "card.corrected": {"en": "I changed {changes}. Not what you said? Press {keep}.", "zh": "我把{changes}。不是你说的？点“{keep}”。"},
    "card.correction": {"en": "{heard} → {meant}", "zh": "“{heard}”改成了“{meant}”"},
    "card.untranslated": {
        "en": "I could not translate {words}, so that is left out of the picture. Press {edit} to put it another way.",
        "zh": "{words}我没能翻译，不会画进去。可以点“{edit}”换个说法。",
    },
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
    "card.doubtful": {
        "en": "I'm not sure I heard you right — please check the words. Wrong language? Press {retry}. Wrong words? Press {edit}.",
        "zh": "我不太确定听对了，请看看上面的字。语言不对？点「{retry}」。字不对？点「{edit}」。",
    },
    "card.draw_anyway": {
        "en": "I'm only {confidence:.0%} sure I heard you right. Draw it anyway?",
        "zh": "我只有 {confidence:.0%} 的把握听对了。还是要画吗？",
    },
    "button.draw_anyway": {"en": "✅ Yes, draw it", "zh": "✅ 是的，画吧"},
    "language.other": {"en": "another language", "zh": "其他语言"},
    "card.expired": {
        "en": "This card has expired. Send the voice note again.",
        "zh": "这张卡片已过期，请重新发送语音。",
    },
    "button.confirm": {"en": "✅ Draw it", "zh": "✅ 开始画"},
    "button.edit": {"en": "✏️ Edit", "zh": "✏️ 修改"},
    "button.keep_said": {"en": "↩️ Keep what I said", "zh": "↩️ 保留原话"},
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
    "progress.loading": {
        "en": "📦 Loading the drawing model… The first time it is downloaded (a few GB), which can take a while.",
        "zh": "📦 正在加载作画模型……第一次需要下载（几 GB），可能要等一会儿。",
    },
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
    # --- a model the bot needs is missing (the operator's log says how to add it) ---
    "model.unavailable.speech": {
        "en": "The speech model isn't installed on this server yet; the operator has been told how to add it.",
        "zh": "这台服务器还没有安装语音识别模型，已经告诉管理员怎么添加了。",
    },
    "model.unavailable.drawing": {
        "en": "The drawing model isn't installed on this server yet; the operator has been told how to add it.",
        "zh": "这台服务器还没有安装作画模型，已经告诉管理员怎么添加了。",
    },
    "model.unavailable.style": {
        "en": "This style isn't installed on this server yet; the operator has been told how to add it. Try another style.",
        "zh": "这台服务器还没有安装这个风格，已经告诉管理员怎么添加了。换一个风格试试。",
    },
    "model.unavailable.image_check": {
        "en": "The picture check isn't installed on this server yet; the operator has been told how to add it.",
        "zh": "这台服务器还没有安装图片检查模型，已经告诉管理员怎么添加了。",
    },
    "button.retry_missing": {"en": "🔁 Retry", "zh": "🔁 重试"},
    "voice.gone": {
        "en": "I no longer have that voice note (I restarted since). Please send it again.",
        "zh": "那条语音已经不在了（我之后重启过）。请再发一次。",
    },
    "model.unavailable.model": {
        "en": "A model this bot needs isn't installed on this server yet; the operator has been told how to add it.",
        "zh": "这台服务器还缺少一个需要的模型，已经告诉管理员怎么添加了。",
    },
    "delivery.failed": {
        "en": "Your picture is ready, but I couldn't send it. Press “Send again” — I'll also retry when I restart.",
        "zh": "图已经画好了，但发送失败。请点「重新发送」——我重启后也会再试。",
    },
    "button.send_again": {"en": "📤 Send again", "zh": "📤 重新发送"},
    "job.not_stored": {
        "en": "Your picture was drawn, but I couldn't save it — a storage problem on my side. "
        "Press “Try again” in a little while; I'll also try again when I restart.",
        "zh": "图已经画好了，但我这边保存失败（存储出了问题）。请稍后点「再试一次」——我重启后也会再试。",
    },
    "button.try_again": {"en": "🔄 Try again", "zh": "🔄 再试一次"},
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
    "settings.heading": {"en": "Settings", "zh": "设置"},
    "settings.row": {"en": "{label}: {value}", "zh": "{label}：{value}"},
    "settings.yours": {"en": "Just for you, {name}:", "zh": "只对你（{name}）生效："},
    "settings.chat": {
        "en": "For everyone here (only admins can change these):",
        "zh": "对这里的所有人生效（只有管理员可以修改）：",
    },
    "settings.language_label": {"en": "Language", "zh": "语言"},
    "settings.style_label": {"en": "Default style", "zh": "默认风格"},
    "settings.chat_language_label": {"en": "Chat language", "zh": "聊天语言"},
    "settings.confirm_label": {"en": "Confirm before drawing", "zh": "作画前确认"},
    "settings.language": {"en": "🌐 中文 / English", "zh": "🌐 中文 / English"},
    "settings.language_auto": {"en": "automatic (follows your app: {current})", "zh": "自动（跟随应用：{current}）"},
    "settings.language_follows_chat": {
        "en": "automatic (follows this chat: {current})",
        "zh": "自动（跟随这里的设置：{current}）",
    },
    "settings.chat_language_auto": {"en": "automatic (each member's app)", "zh": "自动（跟随每个人的应用）"},
    "settings.auto": {"en": "Automatic", "zh": "自动"},
    "settings.choose_language": {"en": "Which language shall I use with you?", "zh": "我用哪种语言和你说话？"},
    "settings.choose_chat_language": {
        "en": "Which language shall I use here, with members who have not chosen their own?",
        "zh": "这里默认用哪种语言（对没有自己选择语言的人）？",
    },
    "settings.my_language": {"en": "🌐 My language", "zh": "🌐 我的语言"},
    "settings.my_style": {"en": "🎨 My style", "zh": "🎨 我的风格"},
    "settings.chat_language_button": {"en": "🌐 Chat language", "zh": "🌐 聊天语言"},
    "settings.admins_only": {
        "en": "Only admins can change this chat's settings. Your own are under “{language}” and “{style}”.",
        "zh": "只有管理员可以修改这里的设置。你自己的设置在「{language}」和「{style}」里。",
    },
    "ui_language.en": {"en": "English", "zh": "English"},
    "ui_language.zh": {"en": "中文（简体）", "zh": "中文（简体）", "zh-Hant": "中文（简体）"},
    "ui_language.zh-Hant": {"en": "中文（繁體）", "zh": "中文（繁體）", "zh-Hant": "中文（繁體）"},
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
        "en": "🚫 I can't use that picture here: the automatic picture check held it back. Drawing it again or another description may work.",
        "zh": "🚫 这张图不能在这里使用：自动图片检查没有放行。可以重画一次，或换个描述试试。",
    },
    "policy.photo_flagged": {
        "en": "🚫 I can't use that picture here: the automatic picture check held it back. You can send another one.",
        "zh": "🚫 这张图不能在这里使用：自动图片检查没有放行。可以换一张发给我。",
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
    "settings.policy_here": {"en": "Content policy here", "zh": "这里的内容尺度"},
    "settings.policy_label": {"en": "Content policy", "zh": "内容尺度"},
    "settings.policy_button": {"en": "🛡 Content policy", "zh": "🛡 内容尺度"},
    "settings.choose_policy": {"en": "Content policy for this chat:", "zh": "这个聊天的内容尺度："},
    "policy.choice.default": {"en": "as the bot is set", "zh": "跟随机器人设置"},
    "policy.choice.strict": {"en": "strict", "zh": "严格"},
    "policy.choice.standard": {"en": "standard", "zh": "标准"},
    "policy.choice.off": {"en": "off", "zh": "关闭"},
    "policy.off_not_allowed": {
        "en": "“Off” is only possible in age-restricted Discord channels and in chats the bot's operator allows.",
        "zh": "“关闭”只能用于 Discord 的年龄限制频道和机器人运营者允许的聊天。",
    },
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
    """The chosen UI language, else the platform locale's, else English.

    zh-TW, zh-HK, zh-MO, zh-Hant and Cantonese (yue) read Traditional ("zh-Hant");
    zh, zh-CN, zh-SG and zh-Hans Simplified ("zh").
    """
    if setting in LANGUAGES:
        return setting
    script = script_for(locale)
    if script == "zh-Hant":
        return "zh-Hant"
    return "zh" if script == "zh-Hans" else "en"


def reader_script(setting: str | None, locale: str | None, *, spoken: str | None = None) -> Script | None:
    """The Chinese script a user reads transcripts in: their chosen language's, else their platform locale's.

    A chosen Chinese UI ("zh", "zh-Hant") decides; any other choice (or none)
    leaves it to the locale, where ``spoken`` (the language asked for) decides
    only for a bare "zh" (Cantonese: Traditional). ``None``: not a Chinese
    reader, the transcript stays as heard.
    """
    return script_for(setting) or script_for(locale, spoken=spoken)


def is_chinese(lang: str) -> bool:
    """True for both Chinese UIs (Simplified and Traditional)."""
    return lang in ("zh", "zh-Hant")


def in_script(text: str, lang: str) -> str:
    """Simplified Chinese ``text`` (a lexicon word, a style name) as the ``lang`` UI writes it."""
    return taiwan_phrasing(text) if lang == "zh-Hant" else text


def template(key: str, lang: str) -> str:
    """The unformatted message ``key`` in ``lang``: its own text, else made from its source language's, else English."""
    texts = MESSAGES[key]
    text = texts.get(lang)
    if text is not None:
        return text
    if lang in DERIVED:
        return _derived(key, lang)
    return texts["en"]


@cache
def _derived(key: str, lang: str) -> str:
    texts = MESSAGES[key]
    source = texts.get(DERIVED[lang])
    return in_script(source, lang) if source is not None else texts["en"]


def t(key: str, lang: str, **params: object) -> str:
    """The message ``key`` in ``lang`` (falls back to English), formatted with ``params``."""
    return template(key, lang).format(**params)


def error_text(key: str, lang: str, params: Mapping[str, object] | None = None) -> str:
    """The message for an error ``key``; the generic one when the key is unknown or its ``params`` are missing.

    Engine failures that cross a thread or process (``JobFailed``) carry only
    their key, so a parameterised message must degrade, not crash.
    """
    try:
        return t(key, lang, **(params or {}))
    except (KeyError, IndexError, ValueError):
        return t("error.generic", lang)
