"""Chat-wide settings: what a chat's admins decide for everyone in it, one entry each.

A chat-wide setting is a field of :class:`db.preferences.ChatOverrides` (a
column of ``chat_settings``) plus one :class:`ChatSetting` in
:data:`CHAT_SETTINGS`. From the entry the /settings card shows its line and
its button, the button toggles it (two choices) or opens a picker (more), and
the conversation lets only the chat's admins change it and answers everyone
else privately. Adding one (e.g. a content-policy level) is one more entry
here, its words in the catalogs of :mod:`handlers.locales` and its column.

Personal settings (a user's language, default style and voice replies) are not
here: anyone changes their own, for themselves (:mod:`handlers.conversation.settings`);
their choices are :data:`LANGUAGE_CHOICES` and :data:`VOICE_CHOICES`.
"""

from __future__ import annotations

from dataclasses import dataclass

from db.preferences import DEFAULT_PREFERENCES, ChatOverrides, Preferences
from handlers.actions import Action


@dataclass(frozen=True)
class Choice:
    """One value a setting can take."""

    #: What a button carries for it (short, no ``:``).
    token: str
    #: What is stored (``None``: not set, the default applies).
    value: object
    #: i18n key of its name on buttons and pickers.
    label: str
    #: i18n key of how the /settings card shows it, when not the label.
    shown: str = ""
    #: Tokens buttons sent earlier carried for it (still in chats), e.g. "zh" for "zh-Hans".
    legacy: tuple[str, ...] = ()

    def named_by(self, token: str) -> bool:
        """Does a button's ``token`` name this choice (its token now or one it had)?"""
        return token == self.token or token in self.legacy


def choice_for(choices: tuple[Choice, ...], token: str) -> Choice | None:
    """The one of ``choices`` a button's ``token`` names, or None."""
    return next((c for c in choices if c.named_by(token)), None)


@dataclass(frozen=True)
class ChatSetting:
    """A setting of the whole chat (see the module docstring)."""

    #: The :class:`~db.preferences.ChatOverrides` field (and ``chat_settings`` column).
    field: str
    #: Its button's action.
    action: Action
    #: i18n key of its name on the card.
    label: str
    #: i18n key of its button.
    button: str
    choices: tuple[Choice, ...]
    #: What applies while a group has not set it.
    default: object = None
    #: i18n key of the picker's question (settings with more than two choices).
    question: str = ""
    #: Shown (and changed) in private chats too, where it is the user's own value of the same name;
    #: False when a personal setting covers it there.
    in_private: bool = True

    @property
    def toggles(self) -> bool:
        """Two choices: the button switches to the other; more: it opens a picker."""
        return len(self.choices) == 2

    def current(self, chat: ChatOverrides | None, user: Preferences) -> object:
        """The value that applies: the group's, else the default; in a private chat (``chat`` None) the user's own."""
        if chat is None:
            return getattr(user, self.field, self.default)
        value = getattr(chat, self.field)
        return self.default if value is None else value

    def choice_of(self, value: object) -> Choice:
        """The choice for a stored ``value`` (the first one for a value no longer offered)."""
        return next((c for c in self.choices if c.value == value), self.choices[0])

    def choice_for(self, token: str) -> Choice | None:
        """The choice a button's ``token`` names, or None."""
        return choice_for(self.choices, token)

    def other(self, value: object) -> Choice:
        """For a toggle: the choice that is not ``value``."""
        return next(c for c in self.choices if c != self.choice_of(value))


#: The UI languages to choose from; "automatic" follows the platform locale.
LANGUAGE_CHOICES = (
    Choice("auto", None, "settings.auto"),
    Choice("en", "en", "ui_language.en"),
    Choice("zh-Hans", "zh-Hans", "ui_language.zh-Hans", legacy=("zh",)),
    Choice("zh-Hant", "zh-Hant", "ui_language.zh-Hant"),
)

#: A user's voice replies: none, after their voice notes, always (the operator's ``VOICE_REPLIES`` until chosen).
VOICE_CHOICES = (
    Choice("off", "off", "voice.mode.off"),
    Choice("voice", "voice", "voice.mode.voice"),
    Choice("always", "always", "voice.mode.always"),
)

#: Every chat-wide setting, in the order the /settings card shows them.
CHAT_SETTINGS: tuple[ChatSetting, ...] = (
    ChatSetting(
        "language",
        Action.CHAT_LANGUAGE,
        "settings.chat_language_label",
        "settings.chat_language_button",
        (Choice("auto", None, "settings.auto", shown="settings.chat_language_auto"), *LANGUAGE_CHOICES[1:]),
        question="settings.choose_chat_language",
        in_private=False,  # a private chat's language is its user's own
    ),
    ChatSetting(
        "confirm_before_generate",
        Action.TOGGLE_CONFIRM,
        "settings.confirm_label",
        "settings.toggle_confirm",
        (Choice("on", True, "settings.confirm_on"), Choice("off", False, "settings.confirm_off")),
        default=DEFAULT_PREFERENCES.confirm_before_generate,
    ),
    ChatSetting(
        "content_policy",
        Action.CHAT_POLICY,
        "settings.policy_label",
        "settings.policy_button",
        (
            Choice("default", None, "policy.choice.default"),
            Choice("strict", "strict", "policy.choice.strict"),
            Choice("standard", "standard", "policy.choice.standard"),
            Choice("off", "off", "policy.choice.off"),
        ),
        question="settings.choose_policy",
        in_private=False,  # a private chat follows CONTENT_POLICY (/settings shows the level there too)
    ),
    ChatSetting(
        "voice_replies",
        Action.CHAT_VOICE,
        "settings.chat_voice_label",
        "settings.chat_voice_button",
        (Choice("on", None, "settings.chat_voice_on"), Choice("off", False, "settings.chat_voice_off")),
        in_private=False,  # a private chat's voice replies are its user's own
    ),
)

#: Button action -> its setting.
BY_ACTION = {setting.action: setting for setting in CHAT_SETTINGS}
