"""/settings and /style: personal settings for whoever presses, chat-wide ones for the chat's admins.

Every settings card and picker on screen is remembered (the newest
:data:`~handlers.conversation.context.SETTINGS_REMEMBERED`) and kept true:
after a change, each of its owner's others that no longer shows what is
true is edited in place.
"""

from __future__ import annotations

import logging

from engine.policy.levels import Level, off_allowed
from handlers import cards
from handlers.actions import Action
from handlers.chat_settings import BY_ACTION as CHAT_SETTINGS_BY_ACTION
from handlers.chat_settings import LANGUAGE_CHOICES, VOICE_CHOICES, choice_for
from handlers.conversation.card_view import style_picker
from handlers.conversation.context import Context, SettingsView, Who
from handlers.events import ButtonPress, Command, Origin
from handlers.i18n import pick_language, t
from handlers.replies import Reply

log = logging.getLogger(__name__)


async def on_settings(ctx: Context, who: Who, command: Command) -> None:
    """/settings: the settings card."""
    await _send_settings(ctx, who)


async def on_style(ctx: Context, who: Who, command: Command) -> None:
    """/style: the default style's picker."""
    await _send_settings(ctx, who, Action.DEFAULT_STYLE)


async def on_language(ctx: Context, who: Who, press: ButtonPress) -> None:
    """The user's own language: a choice sets it, else its picker opens."""
    choice = choice_for(LANGUAGE_CHOICES, press.value)
    if choice is None:
        await _send_settings(ctx, who, Action.SET_LANGUAGE)
        return
    await ctx.repository.update_user_settings(who.user_id, language=choice.value)  # type: ignore[arg-type]  # a choice of the language list: a str
    await _saved(ctx, who, press)


async def on_default_style(ctx: Context, who: Who, press: ButtonPress) -> None:
    """The user's default style: a style sets it, else its picker opens."""
    if press.value not in ctx.config.styles:
        await _send_settings(ctx, who, Action.DEFAULT_STYLE)
        return
    await ctx.repository.update_user_settings(who.user_id, default_style=press.value)
    await _saved(ctx, who, press)


async def on_voice_replies(ctx: Context, who: Who, press: ButtonPress) -> None:
    """The user's own voice replies: a choice sets it, else its picker opens (nothing where none are spoken)."""
    if ctx.voice is None:
        return
    choice = choice_for(VOICE_CHOICES, press.value)
    if choice is None:
        await _send_settings(ctx, who, Action.VOICE_REPLIES)
        return
    await ctx.repository.update_user_settings(who.user_id, voice_replies=choice.value)  # type: ignore[arg-type]  # a choice of the voice list: a str
    if choice.value != "off":  # they may have allowed voice messages since their chat refused one
        await ctx.voice.accept_again(who.origin)
    await _saved(ctx, who, press)


async def on_chat_setting(ctx: Context, who: Who, press: ButtonPress) -> None:
    """A chat-wide setting: in a group only its admins change it (others are told privately); a private chat is its user's."""
    entry = CHAT_SETTINGS_BY_ACTION[press.action]
    group = who.origin.is_group
    if not group and not entry.in_private:
        return
    if group and not await _is_admin(ctx, who.origin):
        mine = {"language": t("settings.my_language", who.lang), "style": t("settings.my_style", who.lang)}
        await ctx.messenger.notify(who.origin, t("settings.admins_only", who.lang, **mine))
        return
    user = await ctx.repository.get_user_settings(who.user_id)
    chat = await ctx.repository.get_chat_settings(who.chat_id) if group else None
    current = entry.current(chat, user)
    choice = entry.choice_for(press.value)
    if choice is None and entry.toggles:
        if press.value:
            return
        choice = entry.other(current)  # a toggle from before buttons carried the value they switch to
    if choice is None:
        await _send_settings(ctx, who, entry.action)
        return
    if entry.field == "content_policy" and choice.value == Level.OFF and not _off_allowed(ctx, who.origin):
        await ctx.messenger.notify(who.origin, t("policy.off_not_allowed", who.lang))
        return
    if group:
        await ctx.repository.update_chat_settings(who.chat_id, **{entry.field: choice.value})  # type: ignore[arg-type]  # the settings table pairs a field with a value of its type
    else:
        await ctx.repository.update_user_settings(who.user_id, **{entry.field: choice.value})  # type: ignore[arg-type]  # the settings table pairs a field with a value of its type
    await _saved(ctx, who, press)


def _off_allowed(ctx: Context, origin: Origin) -> bool:
    """May this chat's content policy be ``off`` (a Discord age-restricted channel, a chat in ``POLICY_OFF_CHATS``)?"""
    policy = ctx.config.policy
    return off_allowed(origin.platform, origin.chat_id, age_restricted=origin.age_restricted, off_chats=policy.off_chats)


async def _is_admin(ctx: Context, origin: Origin) -> bool:
    """May ``origin``'s user change their chat's settings? A private chat is theirs; in a group the platform says."""
    if not origin.is_group:
        return True
    try:
        return await ctx.messenger.is_admin(origin)
    except Exception:
        log.warning("could not tell whether %s user %s administers %s", origin.platform, origin.user_id, origin.chat_id, exc_info=True)
        return False


async def _settings_card(ctx: Context, who: Who) -> Reply:
    """/settings for ``who``: their own settings and, in a group, the group's (as stored: unset ones say so)."""
    user = await ctx.repository.get_user_settings(who.user_id)
    chat = await ctx.repository.get_chat_settings(who.chat_id) if who.origin.is_group else None
    return cards.settings_card(
        who.lang,
        user=user,
        chat=chat,
        style=cards.style_name(who.style, who.lang, ctx.config.style_names),
        app_language=pick_language(None, who.origin.locale),
        name=who.origin.user_name or "👤",
        policy=who.policy,
        voice_default=ctx.voice.default if ctx.voice is not None else None,
    )


async def _settings_view(ctx: Context, who: Who, picker: Action | None = None) -> Reply:
    """What ``who``'s settings card (``picker`` None) or settings picker (the action its choices carry) shows now."""
    if picker is None:
        return await _settings_card(ctx, who)
    if picker == Action.DEFAULT_STYLE:
        return style_picker(ctx, who, cards.NO_REQUEST, Action.DEFAULT_STYLE, who.style)
    user = await ctx.repository.get_user_settings(who.user_id)
    if picker == Action.SET_LANGUAGE:
        return cards.language_choice_picker(who.lang, user.language)
    if picker == Action.VOICE_REPLIES and ctx.voice is not None:
        return cards.voice_choice_picker(who.lang, ctx.voice.mode(user.voice_replies))
    entry = CHAT_SETTINGS_BY_ACTION[picker]
    chat = await ctx.repository.get_chat_settings(who.chat_id) if who.origin.is_group else None
    return cards.choice_picker(entry.action, who.lang, entry.question, entry.choices, entry.current(chat, user))


async def _send_settings(ctx: Context, who: Who, picker: Action | None = None) -> None:
    """Post ``who``'s settings card or a settings picker (see :func:`_settings_view`), remembered to be kept true."""
    reply = await _settings_view(ctx, who, picker)
    _remember(ctx, who.origin, await ctx.messenger.send(who.origin, reply), picker, reply)


async def _saved(ctx: Context, who: Who, press: ButtonPress) -> None:
    """Keep ``who``'s other settings cards and pickers true (:func:`_refresh`), say so privately, and show
    the settings as they are now where the button was (the card, or the picker), in their language as it is now."""
    who = await ctx.who(who.origin)
    await _refresh(ctx, who.origin, but=press.message_ref)
    await ctx.messenger.notify(who.origin, t("settings.saved", who.lang))
    card = await _settings_card(ctx, who)
    shown = await ctx.put(who, press.message_ref or None, card)
    if shown is not None:
        _remember(ctx, who.origin, shown, None, card)


def _remember(ctx: Context, origin: Origin, ref: str, picker: Action | None, reply: Reply) -> None:
    """Message ``ref`` shows ``origin``'s user their settings card (``picker`` None) or a settings picker, as ``reply``."""
    if ref:
        ctx.settings_shown[(origin.platform, ref)] = SettingsView(origin, picker, reply)


async def _refresh(ctx: Context, origin: Origin, *, but: str = "") -> None:
    """After a change: every other settings card and picker of ``origin``'s user (in any of their chats on the platform)
    that no longer shows what is true is edited in place, in their language as it is now.

    Only their own messages: someone else's card stays as its owner last saw it. A message
    that can no longer be edited (deleted, or the platform no longer allows it) is forgotten.
    """
    mine = [
        (key, view) for key, view in list(ctx.settings_shown.items())
        if key[0] == origin.platform and key[1] != but and view.origin.user_id == origin.user_id
    ]
    for key, view in mine:
        try:
            reply = await _settings_view(ctx, await ctx.who(view.origin), view.picker)
            if reply != view.reply:
                await ctx.messenger.edit(view.origin, key[1], reply)
                _remember(ctx, view.origin, key[1], view.picker, reply)
        except Exception:
            log.info("could not update settings message %s", key[1], exc_info=True)
            ctx.settings_shown.pop(key, None)
