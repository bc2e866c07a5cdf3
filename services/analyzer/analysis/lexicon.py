"""The built-in engine's cue phrases, as regular expressions over normalised text.

Normalised text (``text.normalise``) is lowercase tokens separated by single spaces, without
apostrophes ("dont", "im", "its", "thats"). Patterns stay short (two to four words) so that one
misrecognised word in an utterance rarely hides a cue, allow the common fillers in between
("not really interested") and come in several phrasings. Every pattern is compiled once, at
import.

Weights express how strongly a cue signals its intent; they are summed per utterance (capped)
and over the call (see ``findings.decide_intent``).
"""

# The patterns are long alternations that read best unbroken, one phrasing family per line.
# ruff: noqa: E501

from __future__ import annotations

import re
from collections.abc import Mapping

Pattern = re.Pattern[str]


def rx(*alternatives: str) -> Pattern:
    """One pattern matching any of ``alternatives`` as whole words."""
    return re.compile(r"\b(?:" + "|".join(f"(?:{a})" for a in alternatives) + r")\b")


# Building blocks.
WE = r"(?:we|i|were|we are|im|i am|our team|my team)"
NEG = r"(?:not|dont|do not|doesnt|does not|didnt|did not|never|no|isnt|is not|arent|are not|wont|will not|cant|cannot)"
FILL = r"(?:(?:really|very|so|quite|just|actually|definitely|pretty|that|too|all|at all) )?"
DAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
MONTH = r"(?:january|february|march|april|may|june|july|august|september|october|november|december)"
_NUM = r"(?:a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|a few|a couple of|couple of|\d+)"
NUM_WORD = rf"(?:{_NUM}(?: or {_NUM}| to {_NUM})?)"
SEASON = r"(?:spring|summer|autumn|fall|winter|new year|holidays|christmas|easter|year end)"

#: Words that, among the three tokens before a positive cue, negate it ("not interested").
NEGATORS = frozenset(
    {"not", "no", "dont", "doesnt", "didnt", "never", "isnt", "arent", "wasnt", "wont", "cant", "cannot", "nobody"}
)

# ------------------------------------------------------------------------------------------
# Intent (customer utterances weigh most; see findings)
# ------------------------------------------------------------------------------------------

#: intent -> [(pattern, weight, negatable)]
INTENT_CUES: Mapping[str, tuple[tuple[Pattern, float, bool], ...]] = {
    "NOT_INTERESTED": (
        (
            rx(
                rf"{NEG} {FILL}interested",
                r"no interest",
                r"not for (?:us|me)",
                r"not a (?:good )?fit",
                r"(?:no|not of any|not any) use to (?:us|me)",
                r"not something (?:we|i) (?:would|will|need|want)",
                r"(?:we|i) (?:would|will) never (?:use|need|buy)",
            ),
            2.0,
            False,
        ),
        (
            rx(
                r"remove (?:us|me|my number|our number|my name|our names?) from",
                r"take (?:us|me|my number|our number) off",
                r"(?:dont|do not|never|stop|please dont|please do not) (?:ever )?call(?:ing)? (?:us|me|here|again|this number)",
                r"stop calling",
                r"(?:dont|do not|never) (?:\w+ )?(?:call|ring|phone|contact|email|bother|tell) (?:me|us) again",
                r"(?:dont|do not) (?:contact|email) (?:us|me)",
                r"(?:take|put) (?:us|me) (?:off|on your do not call)",
                r"do not call list",
            ),
            2.5,
            False,
        ),
        (
            rx(
                r"no thank(?:s| you)",
                r"(?:we|i) (?:will|ll)? ?pass",
                r"(?:dont|do not) (?:want|need) (?:it|this|that|your|any|anything)",
                r"(?:not|never) (?:going to|gonna) (?:buy|use|sign|switch|change)",
                r"(?:dont|do not) (?:bother|waste)",
                r"not (?:looking|buying|in the market)",
                r"(?:we|i) (?:have|ve)? ?decided (?:against|not)",
                # A polite "no" after thanks, a flat "we won't be ...", an offer already covered.
                r"(?:thanks|thank you)(?: anyway)? but no",
                r"(?:we|i) (?:wont|will not|are not going to|arent going to|am not going to) (?:be )?(?:do|doing|buy|buying|switch|switching|change|changing|sign|signing|go ahead|going ahead|take|taking)",
                r"(?:stick|stay|staying|sticking|keep|keeping) with (?:what (?:we|i) (?:have|use|got)|our (?:current|own|existing|supplier|provider|vendor)|them)",
                r"not looking to (?:change|switch|buy|move)",
                r"(?:were|we are|im|i am) (?:covered|all set|sorted)",
                r"(?:signed|went|gone|going|go) with (?:another|a different|someone else|a competitor)",
                # No money for it is a refusal for now (a request to call later outweighs it).
                r"(?:no|dont have (?:the |any )?|do not have (?:the |any )?|havent got (?:the |any )?)(?:budget|money) for (?:that|this|it|anything|something)",
                r"(?:were|we are|then we are|then were) done(?: here)?",
                r"(?:happy|fine|good|ok|okay) (?:where we are|with what we have|as we are|as it is|as things are)",
                # No reason to change what they have, or done with this kind of offer altogether.
                r"no (?:point|reason|need) (?:in )?(?:switching|changing|to switch|to change|moving|to move)",
                r"(?:had|have had|ive had) enough of",
                r"(?:not|never) (?:again|doing that again)",
            ),
            1.5,
            False,
        ),
    ),
    "INTERESTED": (
        (
            rx(
                r"(?:sounds|looks|seems) (?:really |very |pretty |quite |so )?(?:good|great|interesting|useful|promising|perfect|amazing|nice|helpful|excellent|right|lovely|ideal)",
                r"(?:that|this|it) (?:would|could|will) (?:really )?(?:be (?:great|a relief|useful|helpful|perfect|ideal|nice|a big help|brilliant|a game changer)|help(?: us)?(?: a lot)?|save us)",
                r"(?:that|it|this) fits",
                r"(?:this|that|it|thats|its) (?:is )?(?:really |very |so |quite )?(?:interesting|great|exactly what|what we need)",
                rf"{WE} {FILL}interested",
                r"interested in",
                r"(?:i|we) (?:like|love) (?:it|this|that|the idea|what)",
            ),
            1.0,
            True,
        ),
        (
            rx(
                r"how much (?:does|is|do|would|will|for|are|per)",
                r"what (?:does|would|will|do) (?:it|this|that|they|the \w+(?: plan)?) cost",
                r"what (?:is|are|s) (?:the|your) (?:price|prices|pricing|cost|costs|rate|rates)",
                r"(?:pricing|price) (?:options|plans|details|list)",
                r"what are the next steps?",
                r"how soon can (?:you|we)",
                r"(?:whats|what is) the next step",
                r"free trial",
                r"(?:start|try|get) (?:a |the )?trial",
                r"look(?:ing)? forward",
            ),
            1.0,
            True,
        ),
        (
            rx(
                r"send (?:me |us |over )?(?:a |the |your )?(?:proposal|quote|contract|pricing|offer|agreement|order form|sample)",
                r"(?:can|could|may) (?:i|we) (?:try|test|trial|see) (?:it|this|a demo|the product|the app)",
                r"(?:book|schedule|set up|setup|arrange|organise|organize) (?:a |the |us a |me a )?(?:demo|meeting|trial|call|pilot)",
                r"when can (?:we|you|i) (?:start|begin|set|get)",
                r"(?:show|give) (?:me|us) a demo",
                r"(?:lets|let us) (?:meet|set up|book|schedule|arrange)",
            ),
            1.5,
            True,
        ),
        (
            rx(
                r"sign (?:up|the contract|it|us up|me up)",
                r"lets (?:do it|go|go ahead|move forward|get started|start)",
                r"(?:go|move) ahead",
                r"move forward",
                r"get started",
                r"(?:we|i) (?:will|would like to|want to|d like to|are ready to) (?:buy|sign|try it|start|go with|take it|order)",
                r"(?:were|we are|im|i am) in$",
                r"count (?:us|me) in",
            ),
            2.0,
            True,
        ),
    ),
    "FOLLOW_UP": (
        (
            rx(
                r"call (?:me |us )?(?:back|again)",
                r"(?:call|talk|speak|try|ring|reach) (?:me |us )?(?:again )?(?:later|another time|next week|next month|tomorrow|in a few)",
                r"(?:some|another) other time",
                r"another time",
                r"maybe later",
                r"not (?:right )?now",
                r"(?:not|bad) (?:a )?(?:good )?time",
                r"(?:send|email|mail) (?:me|us|over) (?:some |more |the )?(?:info|information|details|material|materials|brochure|an email|something|documentation)",
                r"(?:get|come) back to (?:you|me|us)",
                r"give (?:me|us) a (?:call|ring|shout)",
                r"(?:try|call|ring|phone) (?:me|us) (?:again )?(?:in|at|on|after|next|around|when|once|then)",
                r"pick (?:this|it|that) up (?:again )?(?:in|on|after|next|when|once|later)",
                r"(?:lets|let us|can we|could we) (?:talk|speak|reconnect) (?:again )?(?:in|on|after|next|later|when|once)",
                r"(?:maybe|perhaps|try) (?:in )?next (?:year|quarter|month|week)",
                r"touch base",
                r"follow up (?:later|next|in)",
                r"(?:talk|speak) (?:again )?(?:later|soon|next)",
            ),
            1.5,
            False,
        ),
        (
            rx(
                rf"{WE} (?:(?:far|way|so|very|really|a bit|quite|too|just) )*busy",
                # Not "need to think": thinking it over alone is the weak cue below.
                r"(?:need|have|has|got) to (?:discuss|talk|check|look)",
                r"let (?:me|us) (?:check|discuss|talk)",
            ),
            1.0,
            False,
        ),
        # Thinking it over is a deferral only with something more: alone it leaves the call open.
        (
            rx(
                r"(?:think|sleep) (?:about|on|it over) ?it",
                r"think (?:it|this|that) (?:over|through)",
                r"let (?:me|us) think",
                r"(?:need|have|has|got) to think",
            ),
            0.5,
            False,
        ),
    ),
}
#: The customer accepting a next step the agent just proposed ("yes, that works").
ACCEPTANCE = rx(
    r"yes",
    r"yeah",
    r"yep",
    r"sure",
    r"(?:sounds|that s|thats|that is) (?:good|great|fine|perfect)",
    r"that works",
    r"works for (?:me|us)",
    r"perfect",
    r"great",
    r"deal",
    r"absolutely",
    r"of course",
    r"(?:lovely|wonderful|brilliant|excellent)",
    r"(?:that|it|this) (?:is )?fine",
    r"(?:ok|okay|alright) (?:lets|great|perfect|sure|thanks|then|see you)",
)
#: What kind of step the customer accepted: a step towards buying (a demo, a proposal, a trial)
#: shows interest; a call later or information to read is a follow-up ("Yes, call me back").
BUYING_STEP = rx(
    r"demo",
    r"meeting",
    r"trial",
    r"pilot",
    r"proposal",
    r"quote",
    r"contract",
    r"agreement",
    r"order",
    r"sign ?up",
    r"account",
    r"sample",
    r"invitation",
    r"deliver\w*",
    r"start",
    r"install\w*",
)
CALLBACK_STEP = rx(
    r"call (?:you|back)",
    r"(?:speak|talk) (?:to you |with you )?(?:again|then|next|later|soon|in|on|after)",
    r"(?:check|touch) (?:in|base)",
    r"follow up",
    r"(?:info|information|details|brochure|materials?|examples|menu|documentation)",
)
ACCEPTANCE_WEIGHT = 1.5
#: A customer objection takes this much from the INTERESTED score (an unresolved price
#: objection outweighs one question about the price).
OBJECTION_DAMPING = 0.75

# ------------------------------------------------------------------------------------------
# BANT
# ------------------------------------------------------------------------------------------

NEEDS = rx(
    # Not "i need approval" or "i have to go": those are about deciding or leaving.
    rf"(?:we|i|wed|id|our team|my team|they) {FILL}(?:need|needs|want|wants|require|requires|would like|d like|are looking for|am looking for|look for|must|have to|has to)(?! (?:approval|permission|a sign off|sign off|to (?:go|ask|check|talk|run|think|discuss|speak|get approval)))",
    r"looking for",
    r"(?:our|the|my|their) (?:main |biggest |big |real )?(?:problem|challenge|issue|pain|goal|priority|need|requirement)s? (?:is|are|right now|at the moment)",
    r"(?:it|this|that) (?:takes|took|is taking) (?:forever|too long|ages|hours|days|a lot of time|so long)",
    rf"{WE} (?:struggle|struggling|have trouble|have problems|have a problem|spend too much|spend a lot|waste|lose|losing|miss|missing)",
    r"by hand",
    r"manually",
    # Time or money going on the problem: "we spend a whole day on it", "our premium went up".
    rf"{WE} spend (?:a |the |half a |half the |all |most of the |whole |an )?(?:whole |entire )?(?:day|days|morning|afternoon|evening|week|hours|ages|night|nights|weekend)",
    r"(?:premium|premiums|bill|bills|costs?|prices?|rent|rates?|fees?) (?:\w+ )?(?:went|have gone|has gone|keep going|keeps going|are going|is going|gone) up",
    r"(?:its|it is|thats|that is) (?:really |very |so )?(?:hard|difficult|painful|time consuming|a mess|slow|tedious)",
    r"(?:would|it d|itd) be (?:great|nice|helpful|good) (?:if|to)",
    r"(?:we|i) (?:wish|hope)",
    r"(?:we|i) could (?:use|do with)",
)
#: A problem with how things are done today, told by the customer: a need, even without the
#: word "need" ("deadlines slip all the time", "it crashes during sales", "everyone complains").
PAIN = rx(
    r"(?:slip|slips|slipping|crash|crashes|crashing|breaks? down|broken|breaking|drops?|dropping|keeps? going down|goes down|fails?|failing)",
    r"(?:takes|took|taking) (?:forever|ages|hours|days|so long|too long|half the day|a lot of time)",
    r"(?:complain|complains|complaining|hate|hates|frustrat\w*|stressful|chaos|a mess|a pain|a nightmare|a headache)",
    r"(?:we|i|they|people|nobody|everyone|customers|staff) (?:still |always |often |keep |sometimes )?(?:lose|lost|miss|missed|forget|forgot|skip|skipped|turn up at the wrong)",
    r"(?:never|cannot|cant|can not|dont|do not) (?:know|keep track|find|see) (?:where|when|what|who|how)",
    r"nobody (?:understands|has time|knows)",
    r"(?:too|very|really|so) (?:slow|loud|expensive to run|old|manual|complicated)",
    r"not (?:good|fast|reliable) enough",
    r"(?:no shows|late payers|mistakes|errors|delays|downtime)",
    r"in the wrong (?:place|places|time|order)",
    r"(?:only|just) a handful|hardly any|barely any|a handful of",
    r"(?:is|are|its|it is|was|were) (?:\w+ )?slow",
    r"(?:loses|losing|lost|costs|costing) (?:us )?(?:a lot of |lots of |so many |too many )?(?:sales|customers|money|time|leads|orders|business|deals)",
    r"(?:charge|charges|charging) (?:us|me) (?:for every|a fortune|too much|extra)",
    r"(?:break in|broke in|broken into|robbed|stolen|burgl\w*|hacked|fraud)",
    r"(?:cannot|cant|can not) (?:take|get|make|do|keep) ",
)

#: category -> pattern that on its own makes an utterance an objection of that category.
OBJECTION_STRONG: Mapping[str, Pattern] = {
    "Pricing": rx(
        r"too (?:expensive|pricey|costly|high|much money|much for)",
        r"(?:very|quite|really|so|bit|little) (?:expensive|pricey|costly)",
        r"expensive",
        r"(?:cant|cannot|couldnt|could not) (?:afford|justify|pay|spend)",
        r"(?:more|higher) than (?:we|i) (?:can|could|want to|are able to|would) (?:pay|spend|afford)",
        r"out of (?:our|my|the) (?:price range|budget|range)",
        r"over (?:our|my|the) budget",
        r"(?:budget|budgets|money) (?:is|are) (?:tight|limited|small|low|an issue|a problem)",
        r"(?:no|dont have (?:a |the |any )?|dont have enough|do not have (?:a |the |any )?) (?:budget|money)",
        r"(?:price|cost|pricing|costs|prices) (?:is|are) (?:the |a |our )?(?:main |big |biggest |real )?(?:problem|issue|concern|obstacle)",
        r"cheaper",
        r"(?:a lot|lots) of money",
        # The price judged too high without the word "expensive": "the price looks high for a
        # team our size", "they cost way too much", "more than we budgeted".
        r"(?:price|prices|pricing|cost|costs|fee|fees|rate|rates|quote) (?:\w+ ){0,6}(?:looks?|seems?|is|are|was|were|sounds?|feels?) (?:a bit |quite |very |rather |pretty |really |a little |way |far )?(?:high|steep|a lot|hefty|too much|much)",
        r"(?:cost|costs|charge|charges) (?:\w+ )?(?:too much|a fortune|a lot)",
        r"more than (?:we|i) (?:budgeted|planned|expected|pay now|spend|pay|have)",
        r"(?:was|were|is|are|its|thats|that is|it is) (?:\w+ )?(?:a lot|too much|a bit much|steep|pricey) for (?:us|me|a \w+)",
        r"(?:beyond|outside|above|over) (?:our|my) (?:means|price range|range)",
        r"(?:flexibility|wiggle room|room to move|negotiat\w*|movement) on (?:the )?(?:price|pricing|cost|fee|rate)",
        r"(?:numbers|maths|math|figures|sums) (?:do not|dont|doesnt|does not|wont|will not) (?:work|add up)",
        r"(?:check|see|find out) (?:what|how much|if|whether) (?:\w+ ){0,2}(?:budget|money)",
        # The price hard to accept, in other words: "hard to swallow", "a stretch for us".
        r"(?:hard|difficult|tough) to (?:swallow|justify|sell internally|stomach)",
        r"(?:a (?:real |big )?stretch|too rich) for (?:us|me|our)",
        r"(?:at|for) (?:that|this|your|those) (?:price|prices|rate|rates|fee|money)",
        r"price tag",
        # A limit on what can be spent: "we only have ten thousand set aside".
        r"(?:only|just) (?:have|got|had) (?:\w+ ){0,4}(?:set aside|to spend|in the budget|budgeted|available)",
        # Another offer for less: a price objection and a competitor ("another installer quoted
        # me nine thousand").
        r"(?:another|other|a different|one|a cheaper|the other) (?:\w+ )?(?:installer|supplier|provider|vendor|company|firm|agency|shop|contractor|one|quote|offer) (?:\w+ ){0,2}(?:quoted|offered|charges?|charged|asks?|asked|costs?|is) (?:me |us )?(?:\w+ ){0,3}(?:less|cheaper|lower|only|\w+ (?:thousand|hundred))",
        r"(?:cheaper|less) (?:elsewhere|somewhere else|from (?:someone|another|them))",
    ),
    "Functionality": rx(
        r"(?:doesnt|does not|cant|cannot|wont|will not|didnt|did not|would not|wouldnt) (?:\w+ )?(?:do|support|handle|have|offer|cover|include)",
        r"(?:it|this|that|your \w+|the \w+) (?:is |are )?(?:missing|lacks|lacking)",
        r"too (?:complicated|complex|basic|limited|simple|hard to use)",
        r"(?:hard|difficult) to use",
        r"(?:it|this|that|your \w+) (?:is |are )?not (?:good|powerful|flexible|accurate|reliable) enough",
        r"(?:doesnt|does not|didnt|did not) work",
        r"(?:not sure|doubt|wonder if) (?:it|this|that|your \w+) (?:can|could|would|will) (?:handle|cope with|deal with|do)",
        r"(?:seems?|looks?|is|feels?|sounds?) (?:a bit |quite |rather |too |very |pretty )?(?:basic|limited|simplistic|clunky|complicated|complex|outdated)",
        r"(?:seemed|looked|was|felt) (?:a bit |quite |rather |too |very |pretty )?(?:basic|limited|simplistic|clunky|complicated|complex|outdated|slow|buggy)",
        # Something the customer looked for and could not find, or a capability missing.
        r"(?:could not|couldnt|cant|cannot|can not|did not|didnt) (?:find|see) (?:a way|any way|how|an option|a button|a setting|where) to",
        r"(?:there is|theres|there was|with) no (?:way|option|feature|setting|button) to",
        r"no use to (?:us|me)",
        r"(?:cope|deal|keep up) with (?:that many|so many|the volume|our volume|our size|that much|the load|our numbers)",
    ),
    "Integration": rx(
        r"(?:doesnt|does not|wont|will not|cant|cannot|might not|may not|would not|wouldnt) (?:integrate|work|connect|sync|talk)",
        # A question whether it fits the customer's systems is a concern about integration.
        r"(?:does|can|will|would) (?:it|this|that|your \w+) (?:\w+ )?(?:work|integrate|connect|sync|talk|plug) (?:with|to|into)",
        r"(?:can|could) (?:we|i|you) (?:import|export|connect|sync|migrate|move|bring|transfer) (?:our|my|the)",
        r"(?:will|does|can|would) (?:it|this|that) (?:\w+ )?(?:plug in|integrate|connect|sync)",
        r"integrat\w* (?:is|would be|could be|will be|might be|seems) (?:a )?(?:problem|issue|concern|hard|difficult|tricky|pain)",
        r"(?:worried|concerned|nervous) about (?:the )?(?:integrat\w*|setup|set up|implementation|migrat\w*|onboarding)",
        # Working with what the customer already runs is a condition: "if your machines do not
        # feed into Sage...", "it has to link to our accounting package".
        r"(?:does not|doesnt|do not|dont|wont|will not|cannot|cant|can not) (?:\w+ )?(?:feed|link|hook|tie|talk|plug) (?:in)?(?:to|into|with|up with)",
        r"(?:has|have|needs?) to (?:\w+ )?(?:feed|link|hook|tie|connect|sync|talk|integrate) (?:in)?(?:to|into|with|up with)",
        r"(?:fits?|fit in|work) with (?:our|my|the) (?:\w+ )?(?:systems?|software|setup|set up|tools?|package|accounts|accounting|bookkeeping|erp|crm|stack)",
    ),
    "Timing": rx(
        r"not (?:the |a )?(?:right|good) time",
        r"(?:too|really|very|quite|a bit) busy",
        r"(?:im|i am|were|we are) busy",
        r"(?:swamped|slammed|snowed under|flat out|up to (?:our|my) ears)",
        r"nothing (?:\w+ )?(?:happens|will happen|can happen|changes) (?:before|until|till)",
        r"bad time",
        r"not (?:right )?now",
        r"(?:maybe|perhaps|possibly|probably|try|wait (?:until|till)|not (?:until|till|before)) (?:\w+ )?next year",
        r"not (?:a |our )?priority",
        r"in the middle of",
        r"(?:year end|busy season|peak season)",
        r"(?:some|another) other time",
        r"another time",
        r"maybe later",
        r"too (?:early|soon|late)",
        # Said of the moment, not of something else ("staff turn up at the wrong time" is a need).
        r"(?:its|it is|thats|that is|this is|now is|honestly) (?:\w+ )?(?:the |a )?(?:wrong|bad|terrible|awful|tricky) (?:moment|time|week|month)",
        r"(?:wrong|bad|terrible|awful) timing",
        r"once (?:we|things|everything|it) (?:have |has |are |is )?(?:settled|calmed|slowed|quietened|finished|done|sorted)",
        r"(?:after|once) (?:the|our) (?:move|migration|launch|busy season|holidays|audit|merger|restructure|rollout|year end)",
    ),
    "Competition": rx(
        r"(?:we|i) (?:already|currently) (?:use|have|work with|are using|using|pay for)",
        r"already (?:have|use|using|got|working with) (?:a|an|another|something|one|someone|a tool|a solution)",
        r"(?:happy|satisfied) with (?:our|the|what we) (?:current|existing|have|provider|vendor|tool|solution)",
        r"(?:under|in) (?:a )?contract with",
        r"(?:locked|tied) into (?:a |our |their )?(?:\w+ )?contract",
        r"(?:built|build|made|make|wrote|developed) (?:our|my) own",
        r"(?:comparing|looking at|talking to|evaluating|speaking to) (?:a few|several|some|other|two|three|a couple of|different) (?:\w+ )?(?:options|vendors|suppliers|providers|companies|tools|solutions|quotes|offers)",
        r"(?:been|stayed|worked) with (?:our|the|them|this|that) (?:\w+ )?(?:\w+ )?(?:company|provider|supplier|vendor|bank|agency|firm|for)",
        r"competitors?",
        r"(?:another|a different|other) (?:vendor|provider|supplier|company|solution|tool)",
        # Chose someone else already, or sees no reason to change.
        r"(?:we|i) (?:went|signed up|signed|switched|moved|go|are going|decided to go) with (?!you\b)",
        r"no (?:point|reason|need) (?:in )?(?:switching|changing|to switch|to change|moving|to move)",
        r"(?:why|what) would (?:we|i) (?:switch|change|move)",
        r"(?:does|do|covers?) (?:everything|all) (?:we|i) need",
        r"(?:another|other|a different|one|the other) (?:\w+ )?(?:installer|supplier|provider|vendor|firm|agency|contractor) (?:\w+ ){0,2}(?:quoted|offered|charges?|charged)",
    ),
    "Trust": rx(
        r"(?:worried|concerned|nervous|worry) about (?:the |our )?(?:secur\w*|privacy|data|complian\w*|gdpr)",
        r"(?:dont|do not|cant) trust",
        r"(?:bad|negative|mixed|poor) reviews",
        r"(?:scam|legit|legitimate)",
        r"never heard of (?:you|your|them)",
        r"too good to be true",
        r"(?:burned|burnt|ripped off|stung) (?:before|by)",
        r"(?:bad|terrible) experiences? with",
        r"bad luck with",
        r"how long have you been (?:around|in business|going|trading|doing this)",
        r"(?:is|how) (?:it|our data|the data) (?:safe|secure)",
        r"never heard of",
        r"how (?:do|can|would|could|should) (?:i|we) (?:know|be sure|trust|believe)",
        r"(?:a |are you a |is this a |is it a )?real (?:firm|company|business|outfit)",
        r"(?:sounds?|seems?|looks?) (?:a bit |rather |quite |very )?(?:dodgy|fishy|suspicious|shady|too good)",
        # Where the customer's data ends up: privacy.
        r"(?:where|who) (?:\w+ ){0,2}(?:does|do|is|are|will|would) (?:the |my |our |all )?(?:\w+ )?(?:data|footage|recordings?|videos?|information|files|records) (?:go|goes|stored|kept|held|end up|live|see)",
        r"(?:server|servers|cloud|data centre|data center) (?:\w+ ){0,2}(?:abroad|overseas|offshore|in another country)",
        # Let down before by a provider like this one.
        r"(?:paid|hired|used|tried|had) (?:an?|another|some|one of those) (?:\w+ ){0,3}(?:agency|company|provider|firm|supplier|consultant|service) (?:\w+ ){0,6}(?:did not|didnt|never|does not|doesnt) (?:work|deliver|help|do anything)",
        r"(?:had|have had) enough of (?:\w+ )?(?:agencies|providers|salespeople|companies|consultants|promises)",
    ),
    "Authority": rx(
        r"(?:need|have|has|got|would have) to (?:ask|check with|talk to|run it by|run this by|get approval|consult|discuss it with|speak (?:to|with)|loop in|involve|bring in)",
        r"not (?:my|mine|our) (?:decision|call)",
        r"not up to (?:me|us)",
        r"(?:wrong|not the right) person",
        r"(?:i|we) (?:dont|do not) (?:deal with|handle|decide|look after)",
        r"above my pay grade",
        r"(?:head|main|central|regional) office (?:\w+ )?(?:decides|signs|approves|has to|needs to|would have to|must)",
        r"(?:need|needs|require\w*) (?:an |the )?(?:approval|sign off|signoff|authorization|authorisation)",
        r"(?:my|our|the) (?:boss|manager|ceo|cfo|owner|board|director|vp|partner|finance director|landlord) (?:\w+ )?(?:decides|has to|needs to|will decide|would have to|makes|must|would need to)",
        r"(?:has|have|needs?|would have|must) to go (?:through|past|via) (?:\w+ ){0,2}(?:procurement|purchasing|finance|legal|the board|head office|my boss|our boss|management|approval|committee)",
        r"(?:holds|owns|controls|has|manages|signs off) the (?:\w+ )?(?:budget|purse strings|money|decision)",
        r"(?:it is|its|thats|that is) (?:\w+ ){0,3}(?:director|manager|boss|owner|partner|board|ceo|cfo|committee) who (?:decides|holds|signs|approves|owns|says|chooses)",
    ),
}

#: Concern words: an utterance with one of these is an objection, categorised by
#: ``CATEGORY_WORDS`` ("Other" when none applies).
OBJECTION_GENERIC = rx(
    r"worried",
    r"worry",
    r"concerns?",
    r"concerned",
    r"hesitant",
    r"skeptical",
    r"sceptical",
    r"doubts?",
    r"not sure(?! (?:yet )?(?:what|when|how|where|who|which)\b)",
    r"unsure",
    r"(?:dont|do not) think (?:it|this|that|we|so)",
    r"(?:problem|issue) (?:for us|with)",
    r"unfortunately",
    r"the (?:main |big |biggest |only )?(?:problem|issue|concern|catch) is",
    r"not (?:convinced|ready|happy)",
    r"(?:thats|that is|its|it is) (?:a )?(?:problem|issue|concern)",
)

CATEGORY_WORDS: Mapping[str, Pattern] = {
    "Pricing": rx(
        r"prices?",
        r"pricing",
        r"costs?",
        r"costly",
        r"expensive",
        r"afford\w*",
        r"budget\w*",
        r"money",
        r"pay\w*",
        r"cheap\w*",
        r"dollars?",
        r"fees?",
        r"discount\w*",
        r"licen[cs]es?",
        r"quot(?:e|ed|es)",
        r"(?:pounds|euros|bucks)",
    ),
    "Functionality": rx(
        r"features?",
        r"functionality",
        r"functions?",
        r"support\w*",
        r"reports?",
        r"reporting",
        r"dashboards?",
        r"missing",
        r"complicated",
        r"complex",
        r"capabilit\w*",
        r"accura\w*",
        r"transcri\w*",
        r"export\w*",
        r"options?",
        r"records",
        r"(?:too )?slow\w*",
        r"crash\w*",
    ),
    "Integration": rx(
        r"integrat\w*",
        r"crm",
        r"salesforce",
        r"hubspot",
        r"api",
        r"connect\w*",
        r"sync\w*",
        r"compatib\w*",
        r"plug ?in",
        r"systems?",
        r"implementation",
        r"migrat\w*",
        r"set ?up",
        r"databases?",
        r"work with",
        r"(?:our|your|the) (?:\w+ )?(?:software|tool|app|platform)",
        r"feed\w* into",
        r"link\w* (?:up )?(?:to|with)",
        r"(?:accounting|bookkeeping|payroll|booking|till|pos) (?:package|software|system)",
        r"erp",
    ),
    "Timing": rx(
        r"timing",
        r"busy",
        r"later",
        r"next (?:year|quarter|month)",
        r"ready",
        r"too (?:early|soon|late)",
        r"deadline",
        r"right now",
    ),
    "Competition": rx(
        r"competitors?",
        r"already (?:use|using|have|work)",
        r"current (?:vendor|provider|tool|solution|system)",
        r"switch\w*",
        r"contract with",
        r"another (?:vendor|provider|tool|company|solution|installer|supplier|agency|firm)",
        r"(?:installer|supplier|provider|vendor)s?",
    ),
    "Trust": rx(
        r"secur\w*",
        r"privacy",
        r"private",
        r"gdpr",
        r"complian\w*",
        r"trust\w*",
        r"(?:bad|good|online|negative|customer|user) reviews?",
        r"references?",
        r"reliab\w*",
        r"safe\w*",
        r"risk\w*",
        r"data",
        r"footage",
        r"servers?",
        r"encrypt\w*",
        r"heard of",
        r"scam\w*",
    ),
    "Authority": rx(
        r"boss",
        r"manager",
        r"approv\w*",
        r"decision",
        r"decide",
        r"ceo",
        r"cfo",
        r"cto",
        r"board",
        r"sign ?off",
        r"procurement",
        r"purchasing",
        r"legal",
        r"director",
        r"owner",
    ),
}

#: The agent acknowledging a concern.
HANDLING_ACK = rx(
    r"i (?:totally |completely |fully )?(?:understand|hear you|see|get it|get that|appreciate|agree)",
    r"(?:thats|that is|its|it is) (?:a )?(?:fair|valid|good|great|reasonable|common) (?:point|question|concern)",
    r"good question",
    r"makes? (?:total |perfect )?sense",
    r"understandable",
    r"(?:im|i am) sorry",
    r"sorry (?:for|about|to)",
    r"(?:no|not a) problem",
    r"understood",
    r"of course",
    r"fair enough",
    r"(?:that|it) makes sense",
)

#: The agent answering a concern with substance.
HANDLING_RESPONSE = rx(
    r"(?:many|most|other|a lot of|lots of|some) (?:of our )?(?:customers|clients|companies|teams|users)",
    r"we (?:can|could|offer|have|also|do|will)",
    r"(?:start|begin|starting) with",
    r"instead",
    r"options?",
    r"alternatives?",
    r"discounts?",
    r"(?:free )?trial",
    r"what if",
    r"good news",
    r"included",
    r"integrat\w* with",
    r"connects? (?:to|with)",
    r"(?:secure|encrypted|compliant|certified)",
    r"roi|return on investment|pays? for itself",
    r"sav(?:e|es|ing) (?:you )?(?:time|money)",
    r"(?:let me|i can|i will|ill) (?:show|explain|send|check|find out)",
    r"(?:basic|starter|smaller|cheaper) (?:plan|package|version|option)",
    # For a timing or an approval concern, planning around it is the answer.
    r"when (?:would|will|is|could|can|do)",
    r"(?:call|ring|speak to|talk to) you (?:again|back|then|after|next|in|on)",
    r"shall i",
    r"would it help",
    r"who (?:else|is|would)",
    r"references?",
)

BUDGET = rx(
    r"budget\w*",
    r"set aside",
    r"(?:can|could|able to|want to|willing to|plan to) (?:spend|invest|pay)",
    # Spending money, not time ("we spend a whole day on it" is a need, not a budget).
    r"spend(?:ing)?(?! (?:a |the |an |all |most of |half |whole |hours|days|weeks|ages|time|too long|so long|every|our days|my days))",
    r"allocat\w*",
    r"afford",
    r"funds?",
    r"funding",
)

#: Statements about who decides, enough on their own.
AUTHORITY = rx(
    r"(?:i|we) (?:make|take|made) (?:the |all the |that |this |final )?(?:decision|decisions|call)",
    r"(?:i|we) (?:decide|sign|approve|have the final say)",
    r"(?:im|i am|were|we are) (?:the |a )?(?:decision maker|one who decides|one who signs|final say)",
    r"decision (?:maker|makers|process)",
    r"final say",
    r"(?:need|needs|require\w*|get|getting) (?:an |the |their |his |her |your |my |our )?(?:approval|sign off|signoff|buy in)",
    r"sign off",
    r"run (?:it|this) by",
    r"check with (?:my|our|the)",
    r"not (?:my|mine|our) (?:decision|call)",
    r"not up to (?:me|us)",
    r"committee",
    r"(?:wrong|not the right) person",
    r"above my pay grade",
    r"(?:head|main|central) office",
    r"signs? off",
    r"(?:loop in|involve|bring in|check with|ask) (?:our|my|the) (?:\w+ )?(?:director|manager|boss|partner|owner|board|head|finance|cfo|ceo|cto)",
    r"(?:im|i am) the (?:manager|owner|director|boss|ceo|founder|head|buyer|decision maker)",
    r"(?:i|we) can (?:order|sign|buy|decide|approve)",
    r"(?:has|have|needs?|would have|must) to go (?:through|past|via) (?:\w+ ){0,2}(?:procurement|purchasing|finance|legal|the board|head office|my boss|our boss|management|approval|committee)",
    r"(?:holds|owns|controls|manages) the (?:\w+ )?(?:budget|purse strings)",
    r"(?:\w+ ){0,3}(?:director|manager|boss|owner|partner|board|ceo|cfo|committee) who (?:decides|holds|signs|approves|owns|chooses)",
    r"(?:i|we) decide (?:on my own|on our own|alone|myself|ourselves)",
)
#: The customer naming themselves when the agent asks who decides ("Who chooses ...?" -
#: "That would be me").
AUTHORITY_SELF = rx(
    r"(?:that would be|thats|that is|it is|its|it would be) (?:me|us|myself)", r"^(?:me|i do|we do|i am|im)$"
)
#: People who may decide: they count when the utterance, or the agent's question before it,
#: is about deciding ("who else is involved?" - "our cfo").
ROLES = rx(
    r"(?:my|our|the) (?:boss|manager|ceo|cfo|cto|coo|cmo|owner|owners|founder|founders|board|director|directors|vp|president|partner|partners|team lead|procurement|legal|finance)",
    r"head of \w+",
)
DECISION_WORDS = rx(
    r"decid\w*",
    r"choos\w*",
    r"in charge",
    r"responsible",
    r"decision\w*",
    r"approv\w*",
    r"sign\w*",
    r"authori\w*",
    r"say",
    r"buy\w*",
    r"purchas\w*",
    r"involved",
    r"budget",
)

TIMELINE = rx(
    rf"(?:by|before|until|in|for|around|at|from|after|early|mid|late|towards) (?:the )?(?:end|beginning|start|middle) of (?:the |this |next )?(?:week|month|quarter|year|{MONTH}|q ?[1-4])",
    rf"(?:the )?(?:end|beginning|start|middle) of (?:the |this |next )?(?:week|month|quarter|year|{MONTH})",
    rf"(?:next|this|coming|following) (?:week|month|quarter|year|{DAY}|spring|summer|autumn|fall|winter|fiscal year)",
    rf"(?:in|within|over|for) (?:the next )?(?:about |around |roughly |some |another )?{NUM_WORD} (?:days?|weeks?|months?|years?|quarters?)",
    rf"(?:by|before|until|in|from|after|early|mid|late|around) {MONTH}",
    rf"(?:by|before|until|on) (?:next )?{DAY}",
    r"(?:by|before|until|in|for|from|after) (?:the )?(?:first|second|third|fourth|last) quarter",
    r"(?:first|second|third|fourth|last) quarter",
    r"(?:by|before|until|in|for|from|after) q ?(?:[1-4]|one|two|three|four)",
    r"q ?[1-4]|q (?:one|two|three|four)",
    r"(?:on|by|before|after|until) the (?:first|second|third|\w+th|twenty \w+|thirty first)\b(?! (?:time|thing|one|person|step|place))",
    r"(?:once|when|after) (?:she|he|they|my \w+|our \w+) (?:is|are|gets?|comes?) back",
    # Times anchored to an event ("after the board meeting", "once the merger is done").
    r"(?:after|before|once|until) (?:the|our|my|this|that|your) (?:\w+ )?(?:meeting|holidays?|launch|merger|audit|year end|review|summer|break|move|season|trade show|conference|release|update|migration|rollout|renewal|refurbishment)",
    r"once (?:we|i|they|things|everything) (?:have |has |are |is |re |ve )?(?:settled|moved|finished|done|sorted|calmed down|up and running|back)",
    rf"(?:in|by|over|during|before|after|until|around|for) (?:the )?{SEASON}",
    r"tomorrow",
    r"asap|as soon as possible",
    r"right away|immediately",
    r"deadline",
)

# ------------------------------------------------------------------------------------------
# Quality parameters
# ------------------------------------------------------------------------------------------

INTRODUCTION = rx(
    r"(?:this is|my name is|its|it is|im|i am) \w+(?: \w+)? (?:from|with|at|here|calling)",
    r"\w+ here (?:from|at|with)",
    r"(?:hi|hello|hey)(?: there)? \w+ from",
    r"(?:calling|call) from",
    r"on behalf of",
    r"my name is",
)
PURPOSE = rx(
    r"(?:the )?reason (?:for|of) (?:my|this|the|our) call",
    r"(?:the )?reason (?:im|i am|i|we are|were) (?:calling|called|reaching out)",
    r"(?:im|i am|were|we are|i was|i) (?:just )?(?:calling|reaching out|getting in touch|ringing) (?:to|about|because|regarding|as|since|with)",
    r"(?:calling|reaching out) (?:to|about|regarding)",
    r"(?:the )?(?:purpose|goal|aim|point|objective) (?:of|for) (?:this|the|my|our|today)",
    r"agenda",
    r"(?:today|in this call|on this call|on the call) (?:id|i would|we|well|i want|i wanted|we will|we are going|were going)(?: like)? to",
    r"(?:id|i would|i wanted|i want|we would|wed) (?:like )?to (?:talk|discuss|show|walk you|go over|cover|understand|learn|share|introduce|review|hear|ask|explain|tell you|find out)",
    r"(?:we will|well|were going to|we are going to|lets) (?:cover|discuss|go over|talk about|look at|walk through)",
    r"plan for (?:today|the call|this call)",
    r"(?:returning|following up on|following up|in reply to) (?:your|our|the) (?:call|email|request|enquiry|inquiry|message|form)",
    r"(?:you|your \w+) (?:asked|enquired|inquired|requested|wrote|emailed|called|rang|got in touch|filled in|signed up|booked) (?:\w+ )?(?:about|for|regarding|in|on)",
    # "I am <doing something> about your ...": in an opening, the reason for the call, whatever
    # the verb (speech recognition often hears "calling" as "called" or "going").
    r"(?:im|i am|were|we are|i was) (?:\w+ ){1,2}(?:about|regarding) (?:your|the|our|a|an|some)",
    r"(?:im|i am|were|we are) (?:going|here|just) to (?:offer|show|tell|talk|ask|introduce|discuss|present|explain)",
    # An outline of the call says what it is for, even when a misheard word hides "agenda".
    r"first \w+(?: \w+){0,15} (?:then|after that|finally)",
)
#: An opening that says what the company does counts for part of the purpose.
VALUE_STATEMENT = rx(r"we help", r"we work with", r"we (?:make|provide|build|offer) (?:a |an )?\w+")
AGENDA_STRUCTURE = rx(
    r"agenda",
    r"first \w+(?: \w+){0,15} (?:then|next|after that|second|finally)",
    r"(?:sound|sounds|does that sound) good",
    r"does (?:that|this) (?:work|sound)",
    r"(?:is that|that) (?:ok|okay|alright) (?:with|for) you",
    r"works for you",
)
#: The customer asking what the call is about: the context was not set.
CONTEXT_MISSING = rx(
    r"why (?:are|were) you calling",
    r"what (?:is|s) (?:this|it|the call) (?:about|regarding)",
    r"what (?:exactly )?(?:do you want|is this)",
    r"who (?:is this|are you)",
)

OPEN_QUESTION = rx(
    r"(?:may|can|could|might) i ask",
    r"how (?:do|does|did|many|much|often|long|are|is|would|will|can|big|far|you|your)",
    r"what (?:you|your)",
    r"what (?:is|are|do|does|did|would|will|was|were|kind|type|sort|made|makes|matters|s)",
    r"whats",
    r"why (?:do|did|is|are|would)",
    r"when (?:do|did|does|would|will|is|are)",
    r"who (?:is|are|else|does|do|would|will|\w+s)",
    r"which (?:\w+ )?(?:do|does|is|are)",
    r"tell me (?:about|more|how|what)",
    r"(?:walk|talk) me through",
    r"(?:can|could) you (?:tell|walk|describe|explain|share)",
    r"describe",
)
CLOSED_QUESTION = rx(
    r"(?:do|does|did|are|is|have|has|would|could|can|will) (?:you|your|they|it|the team|your team)",
)
#: Questions that ask for time or agreement, not about the customer's situation.
NOT_DISCOVERY = rx(
    r"(?:do|did) you have (?:a |an )?(?:couple|few|minute|moment|second|sec|time)",
    r"is (?:this|now) a (?:good|bad) time",
    r"(?:sound|sounds) good",
    r"does (?:that|this) (?:work|sound)",
    r"any (?:other )?questions",
    r"can you hear me",
    r"how are you",
    r"(?:what|how) does (?:it|that|this) (?:cost|sound)",
)

#: What a product does, said by the seller: a seller-side subject ("we", "it", "our cameras",
#: the product's name opening the sentence) and a verb of what it does ("Tillwise combines
#: payments ...", "our cameras read number plates", "we screen every candidate").
_SELLER = r"(?:we|it|this|they|which|ours|our \w+(?: \w+)?|the (?:\w+ )?(?:product|platform|software|tool|app|system|service|plan|model|package|team|hall))"
_DOES = (
    r"(?:let|allow|help|give|send|show|record|track|save|handle|cover|include|read|build|put|warn|answer|check|fix"
    r"|create|calculate|combine|scan|support|connect|integrate|sync|automate|manage|run|deliver|offer|provide|find|cut"
    r"|reduce|remove|replace|screen|move|import|translate|sell|take|print|clean|bring|supply|service|roast|lend|file"
    r"|remind|fill|write|listen|store|encrypt|guarantee|hold|seat|protect|detect|monitor|analy[sz]e|measure|plan|schedule"
    r"|book|respond|train|teach|guide|match|update|back|restore|work|come|make|do|have|ha|cost|charge|keep|turn|stop|catch"
    r"|fit|suit|seat|host|ship|pick)(?:s|es)?"
)
CAPABILITY = rx(
    rf"{_SELLER} (?:(?:can|will|also|now|even|automatically|then|just|all|only|really|already) )*{_DOES}",
    # A product's name opening the sentence (not a question word, a pronoun or a filler).
    rf"^(?!(?:what|how|who|when|where|why|which|do|does|did|is|are|was|were|can|could|would|will|have|has|i|you|they|he|she|we|and|but|so|yes|no|okay|ok|well|great|sure|thats|that|there|here|hi|hello|hey|right|now|then|also|just|please|sorry|thanks|thank)\b)\w+ (?:(?:can|will|also|automatically) )*{_DOES}",
    r"with \w+ (?:you|your \w+|everyone|staff|people) (?:can|will|get)",
    r"our \w+(?: \w+)? (?:is|are) ",
)
#: What the customer gains, said by the seller ("so your receptionist gets those hours back").
BENEFIT = rx(
    r"so (?:that )?(?:you|your|they|everyone|nobody|staff|people|guests|customers|the team|managers)",
    r"you (?:can|will|get|only|no longer|never|could|would|dont have to|do not have to|pay)",
    r"sav(?:e|es|ing) (?:you |your \w+ )?(?:\w+ )?(?:time|money|hours)",
    r"(?:in|within) (?:a few |one |a )?(?:minutes?|seconds?|click|clicks|day|week)",
    r"(?:for )?free",
    r"(?:percent|per cent) off|discount\w*",
    r"no (?:upfront|monthly|extra|setup)",
    r"automatically",
    r"without (?:the|any|a|slowing)",
    r"(?:cheaper|faster|less|lower|quieter|quietly|easier|best|lowest|cheapest|fastest)",
    r"(?:staff|people|everyone|your team|employees|guests|customers|patients) (?:can|will|get)",
)
PITCH = rx(
    r"(?:our|the) (?:product|platform|solution|software|tool|app)",
    r"(?:team|basic|starter|pro|business|enterprise|premium) (?:plan|package|edition)",
    r"our (?:service|system|plans?|customers|clients)",
    r"(?:it|this|which) (?:helps|lets|allows|gives|records|shows|saves|tracks|analy\w*|automat\w*|integrates|can|will|has)",
    r"we (?:help|offer|provide|make|can|do)",
    r"features?",
    r"dashboards?",
    r"reports?",
    r"alerts?",
    r"you (?:can|will be able to|get|could|would be able to)",
    r"which means",
    r"so (?:that )?you (?:can|dont|no longer)",
    r"benefits?",
    r"sav(?:e|es|ing) (?:you )?(?:time|money|hours)",
    r"helps? you",
    r"automatically",
    # What the product or the service does, whatever it is called: "our panels would cut that
    # bill", "our sites take bookings", "we compare twenty insurers for you", "we look after it".
    r"our (?:\w+ )?\w+ (?:take|takes|would|will|can|do|does|let|lets|help|helps|give|gives|record|records|cut|cuts|save|saves|keep|keeps|come|comes|include|includes|make|makes|send|sends|work|works|handle|handles|run|runs|last|lasts)\b",
    r"we (?:also |then |just |even )?(?:compare|handle|guarantee|deliver|install|take care of|look after|manage|build|clean|train|certify|screen|set up|fix|connect|pay|insure|cover|design|collect|check|monitor|store|protect|translate|ship)\b",
    r"(?:for|on behalf of) you(?: every| each| all|\b)",
)

NEXT_STEP_ACTION = rx(
    r"(?:send|email|share|forward|mail) (?:you |it |over |across )?(?:the |a |an |our |some |my )?(?:proposal|quote|contract|pricing|information|info|details|deck|slides|case study|case studies|invite|invitation|agreement|summary|link|recap|brochure|offer)",
    r"(?:book|schedule|set up|setup|arrange|organise|organize|put|plan|lock in|confirm) (?:a |the |our |in |up |you in for |us in for )?(?:demo|meeting|call|trial|follow up|session|slot|time|pilot|onboarding)",
    r"follow up",
    r"(?:call|ring|talk to|speak (?:to|with)|meet|see) you (?:again |on |next |tomorrow|later|in |at )",
    r"(?:start|set up|activate|open|create) (?:your |a |the )?(?:free )?(?:trial|account|pilot)",
    r"(?:calendar|meeting) (?:invite|invitation)",
    r"(?:ill|i will|i ll|we will|well|let me|i can) (?:send|book|schedule|set up|call|email|follow|get back|put|arrange)",
)
NEXT_STEP_MENTION = rx(r"next steps?")
#: The customer asking for a concrete step.
STEP_REQUEST = rx(
    r"(?:send|email|mail) (?:me |us |over )?",
    r"(?:call|ring|phone|try) (?:me|us)",
    r"give (?:me|us) a (?:call|ring)",
    r"(?:set up|book|schedule|arrange|organise|organize) (?:a |the )?(?:demo|meeting|call|trial|pilot)",
    r"(?:try|test|trial) (?:it|this)",
    r"sign (?:us|me) up",
    r"(?:lets|let us) (?:meet|talk|try|start)",
    r"get back to (?:me|us)",
)
#: The agent taking a requested step on.
AGENT_AGREES = rx(
    r"of course",
    r"sure",
    r"certainly",
    r"will do",
    r"with pleasure",
    r"absolutely",
    r"no problem",
    r"(?:i|we) (?:will|ll|can)",
    r"(?:ill|well)",
    r"great",
    r"perfect",
)
CONCRETE_TIME = rx(
    DAY,
    r"tomorrow",
    r"today",
    r"tonight",
    r"this (?:afternoon|morning|evening|week)",
    r"next (?:week|month)",
    rf"{MONTH} (?:\d+|first|second|third|\w+th|\w+st)",
    r"(?:at|around|by) (?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|noon|\d+)(?: (?:oclock|am|pm|thirty|fifteen|forty five))?",
    r"in (?:a|one|two|three) (?:days?|weeks?)",
)
AGREEMENT = rx(
    r"yes",
    r"yeah",
    r"yep",
    r"sure",
    r"great",
    r"perfect",
    r"(?:sounds|that s|thats) (?:good|great|fine|perfect)",
    r"ok",
    r"okay",
    r"alright",
    r"that works",
    r"look(?:ing)? forward",
    r"deal",
    r"fine",
    r"excellent",
    r"of course",
    r"see you",
)

GREETING = rx(r"hi", r"hello", r"hey", r"good (?:morning|afternoon|evening|day)", r"how are you")
THANKS = rx(r"thank(?:s| you)", r"appreciate", r"grateful")
CLOSING = rx(
    r"have a (?:great|good|nice|lovely|wonderful) (?:day|week|weekend|afternoon|evening|one)",
    r"good ?bye",
    r"bye",
    r"take care",
    r"(?:talk|speak) (?:to you )?soon",
    r"(?:talk|speak) to you (?:then|later|next)",
    r"see you",
    r"all the best",
)
COURTESY = rx(
    r"please",
    r"sorry",
    r"of course",
    r"certainly",
    r"my pleasure",
    r"(?:youre|you are) welcome",
    r"i understand",
    r"absolutely",
    r"happy to",
    r"glad to",
)
RUDE = rx(
    r"shut up",
    r"stupid",
    r"idiot\w*",
    r"dumb",
    r"damn",
    r"crap",
    r"shit\w*",
    r"fuck\w*",
    r"hell no",
    r"whatever",
    r"(?:are you|youre) (?:deaf|kidding me)",
    r"bullshit",
)

#: Voicemail and carrier announcements: a "call" with only these is no conversation.
VOICEMAIL = rx(
    r"leave (?:a|your) message",
    r"after the (?:tone|beep)",
    r"(?:not|isnt) available",
    r"voice ?mail",
    r"mailbox",
    r"the (?:person|number) you (?:are|have) (?:calling|called|dialed|dialled)",
    r"please try again later",
)

#: The caller talking to nobody: a call that was not answered, or whose line dropped.
NO_ANSWER = rx(
    r"can you hear me",
    r"(?:are you|is anyone|anybody|anyone) (?:still )?there",
    r"hello (?:hello|are you|is)",
    r"(?:i will|ill|i can|let me) (?:try|call|ring) (?:you )?(?:again|back)",
    r"(?:the )?line is (?:bad|breaking up|terrible|dead)",
    r"(?:cannot|cant|can not) hear (?:you|anything|anyone)",
)

TOPIC_SHIFT = rx(
    r"(?:lets|let us) (?:talk|move|look|turn|get|go) (?:about|on|at|to|into|over)",
    r"moving on",
    r"next (?:i|we|id|lets)",
    r"(?:another|one more) (?:thing|question)",
    r"(?:before|now) (?:we|i) (?:go|finish|wrap|move)",
    r"(?:in terms of|regarding|as for|speaking of)",
    r"to (?:wrap|sum) (?:up|things up)",
)
