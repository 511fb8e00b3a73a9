"""Built-in word lists of the outbound checks (admins add ``terms`` and ``allow`` per check).

Phrases are matched on normalised text (see :mod:`.text`): case-folded, apostrophes
dropped, punctuation turned into spaces, so ``"it's our page"`` matches "It’s our
page!". A trailing ``*`` matches any word ending (``"slizz*"``). Lists are written
from the kinds of incident, not from any one post: broad vocabulary scores weakly
and only combinations (see :mod:`.checks_content`) reach critical.
"""

from __future__ import annotations

# -- profanity and slurs (leetspeak, masking and repeated letters are undone first) --
PROFANITY_STRONG = (
    "fuck", "fucks", "fucking", "fuckin", "fucked", "fucker", "fuckers", "fuckwit", "motherfucker",
    "motherfucking", "shit", "shits", "shitty", "shite", "bullshit", "shithead", "shitshow",
    "bitch", "bitches", "bastard", "bastards", "asshole", "assholes", "arsehole", "dickhead",
    "cunt", "cunts", "wanker", "wankers", "twat", "douchebag", "bollocks", "goddamn", "jackass",
    "dumbass", "piss off", "pissed off",
)
SLURS = (
    "retard", "retards", "retarded", "fag", "fags", "faggot", "faggots", "nigger", "niggers",
    "nigga", "spic", "spics", "kike", "kikes", "chink", "chinks", "tranny", "trannies", "wetback",
    "raghead", "towelhead", "gook", "coon", "paki", "pikey", "gyppo",
)
PROFANITY_MILD = (
    "damn", "damned", "dammit", "crap", "crappy", "piss", "pissed", "wtf", "stfu", "ffs",
    "what the hell", "bloody hell", "prick", "slut", "whore",
)
# stems found inside longer words and hashtags ("sh1tshow", "#fuckmondays"); kept to those
# that do not occur inside ordinary words (so not "cunt": Scunthorpe)
PROFANITY_STEMS = ("fuck", "shit", "bitch", "asshole", "motherf")

# jokes: a competitor mocked (the events pack has its own list for newsjacking)
JOKE = ("lol", "lmao", "lmfao", "rofl", "haha", "hahaha", "jk", "just kidding", "😂", "🤣",
        "😜", "😆", "🤪", "🙃")

# -- divisive topics: politics and religion -----------------------------------------
DIVISIVE = (
    "president", "prime minister", "senator", "congressman", "congresswoman", "governor",
    "democrat", "democrats", "democratic party", "republican", "republicans", "gop", "tory",
    "tories", "labour party", "liberals", "leftist", "leftists", "left wing", "right wing",
    "maga", "socialist", "socialism", "communist", "communism", "fascist", "fascists",
    "abortion", "pro life", "pro choice", "gun control", "second amendment", "2nd amendment",
    "immigration", "illegal immigrants", "illegals", "border wall", "brexit", "impeach",
    "impeachment", "voters", "vote them out", "vote the lot of them out", "build the wall",
    "defund the police", "between a man and a woman", "traitor to this country",
    "the government", "gun control is", "pro gun", "anti gun",
    "vote republican",
    "vote democrat", "vote labour", "vote conservative", "vote tory", "#politics", "politics",
    "politicians", "god", "jesus", "allah", "bible", "quran", "koran", "church", "mosque",
    "synagogue", "atheist", "atheists", "infidel", "infidels", "heathen", "satan", "sinners",
    "zionist", "zionists",
)

# -- claims about the company (regexes on normalised text; see checks_content) -------
CLAIMS = (
    r"(?:been|being|was|were|is|are|get|got|getting) (?:officially )?"
    r"(?:sold|acquired|bought (?:out|up)|taken over)",
    r"\bsold to\b", r"\bacquired by\b", r"\bbought by\b", r"\btaken over by\b",
    r"\bmerg(?:e|es|ed|ing) with\b", r"\bis now (?:part of|owned by)\b",
    r"\b(?:shutting|closing|shut) down (?:for good|permanently|operations|the company|"
    r"the business|forever)\b",
    r"\b(?:is|are|were|was|we are|will be) (?:shutting|closing) down\b",
    r"\bgoing out of business\b", r"\bceas(?:e|ing) (?:all )?(?:trading|operations)\b",
    r"\b(?:bankrupt|bankruptcy|insolvent|insolvency|into administration)\b",
    r"\blay ?offs?\b", r"\blaid off\b", r"\blaying off\b", r"\bjob cuts\b",
    r"\bredundanc(?:y|ies)\b", r"\bmade redundant\b",
    r"\b(?:being|been|getting|got|get|all|all be) fired\b",
    r"\bfired (?:us|everyone|all|half|the whole|staff|\d+)\b",
    r"\b(?:ceo|founder|chairman|chief executive) (?:has )?(?:resigned|quit|was fired|"
    r"stepped down|arrested)\b",
    r"\b(?:losing|lost) (?:our|their) jobs\b",
    r"\bwind(?:ing)? down (?:the|our|this) (?:bank|company|business|operations|brand|charity)\b",
    r"\bclos(?:e|ing) (?:down )?(?:all|every one) of (?:our|the) "
    r"(?:branches|stores|shops|restaurants|offices|locations|outlets)\b",
    r"\bclos(?:e|ing) (?:down )?all (?:our |the )?"
    r"(?:branches|stores|shops|restaurants|offices|locations|outlets)\b",
    r"\bceas(?:e|ing) to (?:trade|operate|exist)\b",
)

# -- scams ---------------------------------------------------------------------
CRYPTO = ("btc", "bitcoin", "bitcoins", "eth", "ether", "ethereum", "crypto", "cryptocurrency",
          "usdt", "usdc", "tether", "doge", "dogecoin", "solana", "xrp", "airdrop", "nft",
          "nfts", "wallet address", "seed phrase", "coins", "token", "tokens")
CREDENTIAL_LURE = (
    r"\b(?:verify|confirm|update|validate|re ?activate) (?:your|ur) "
    r"(?:\w+ )?(?:account|details|identity|information|info|card|password|login|payment)",
    r"\baccount (?:will be|has been|is) (?:suspended|locked|closed|disabled|restricted)",
    r"\bunusual (?:activity|sign ?in|login)", r"\bwithin (?:24|48|12) (?:hours|hrs|h)\b",
    r"\b(?:log ?in|sign ?in) (?:now |here )?to (?:avoid|keep|restore|claim)",
    r"\bclaim (?:your|ur) (?:free |prize|reward|refund|gift)",
    r"\b(?:enter|send|share|dm) (?:us )?(?:your|ur) (?:password|pin|seed|cvv|card number|"
    r"login|private key)",
)

# -- confrontational or hostile tone toward the audience -------------------------
TONE = (
    "our page our rules", "its our page", "our page our way", "we set the rules",
    "if you dont like it", "if you dont like our", "if you dont like us", "nobody is forcing",
    "no one is forcing", "nobodys forcing", "you people", "stop whining", "stop crying",
    "stop complaining", "stop moaning", "quit whining", "quit crying", "whining", "whiners",
    "crybabies", "deal with it", "get over it", "not our problem", "your problem",
    "learn to read", "read the terms before", "youre just impatient", "youre an idiot",
    "youre stupid", "you idiots", "idiots", "morons", "moron", "losers", "pathetic",
    "shut up", "go away", "good riddance", "take your money elsewhere",
    "take your business elsewhere", "take your custom elsewhere", "nobody cares",
    "no one cares", "who cares", "cry more", "boo hoo", "haters", "clueless", "get a life",
    "bye losers", "grow up", "not our fault", "your own fault", "youre welcome to leave",
    "sick of", "fed up with", "so entitled", "entitled people", "entitled customers",
    "spoiled brats", "calm down", "chill out", "not the end of the world",
    "first world problem",
    "who raised you", "who raised u", "get a grip", "🙄",
)
# insults and violence toward anyone (customers, staff, public figures)
INSULTS = (
    "idiot", "idiots", "moron", "morons", "clown", "clowns", "loser", "losers", "pathetic",
    "stupid", "dumb", "imbecile", "cretin", "halfwit", "useless", "incompetent", "ignorant",
    "scum", "scumbag", "disgrace", "disgusting people", "shame on", "should be ashamed",
    "deserves jail", "deserve jail", "needs a slap", "deserves a slap", "punch him",
    "punch her", "punch them", "punch you", "throat punch", "beat up", "hope you die",
    "hope they die", "kill yourself", "kys", "🤡",
)

RELIGIOUS_PLACES = frozenset({"church", "mosque", "synagogue", "bible", "quran", "koran", "god",
                              "jesus", "allah"})
INSULT_ADJECTIVES = frozenset({"stupid", "dumb", "useless", "incompetent", "ignorant",
                               "pathetic", "disgrace"})

# -- personal voice on a brand account ---------------------------------------------
INTOXICATION = (
    "drunk", "so drunk", "getting drunk", "so wasted", "got wasted", "getting wasted",
    "got hammered", "getting hammered", "so hammered", "tipsy", "hungover", "slizz*",
    "sloshed", "beers deep", "drinks deep", "we drink",
    "when we drink", "day drinking", "shots shots", "get lit", "getting lit", "turnt",
    "weed", "stoned", "high af", "edibles", "cocaine", "bong",
)
CASUAL = (
    "lol", "lmao", "lmfao", "rofl", "omg", "who reads this", "who even reads this",
    "nobody reads this", "no one reads this", "wrong account", "my boss", "my job",
    "hate my job", "on the clock", "my shift", "asking for a friend", "last night got",
    "can anyone see this", "test test", "sent from my", "oops wrong", "ugh mondays", "ngl",
    "tbh", "smh", "fml", "idc", "idgaf", "dm me", "my dms", "my personal", "my insta",
    "personal account", "after party", "🍾", "🍻", "🍺", "🍷", "🥂", "🍸", "🍹",
)
