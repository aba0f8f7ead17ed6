"""The UI's words: gettext catalogs, one per UI language, managed with Babel.

``<locale>/LC_MESSAGES/messages.po`` holds every user-facing string, the chat's
and (under ``studio.``) the studio page's, with the existing message keys as
msgids: ``en`` is the English, ``zh_Hans`` the Chinese in Simplified
characters, ``zh_Hant`` the Traditional one — generated from ``zh_Hans`` with
OpenCC ``s2twp`` plus the texts in ``zh_Hant.overrides.po`` that must not be
converted (``python -m handlers.locales.build``). :mod:`handlers.locales.catalogs`
loads them; :mod:`handlers.i18n` is the API the rest of the bot uses.
"""
