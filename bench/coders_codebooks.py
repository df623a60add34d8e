"""Codebooks for the public benchmarks of bench/coders.py: each dataset's labels as a codebook of its own.

Definitions paraphrase the label definitions in ``../shared/datasets/*/SOURCE.md`` (AnnoMI: MI therapist
behaviour and client talk type; EPITOME: the three empathy mechanisms, levels 0/1/2). The examples are
written for this benchmark, not taken from the data. One class = one code; the benchmark predicts the
class with the highest per-code score.
"""

from __future__ import annotations

from pipeline.codebook import Code, Codebook

__all__ = ["annomi_client_codebook", "annomi_therapist_codebook", "epitome_codebook"]


def annomi_therapist_codebook() -> Codebook:
    """MI therapist behaviour: reflection, question, therapist input, other (therapist utterances)."""
    t = ["therapist"]
    codes = [
        Code(id="MI.REFLECTION", name="Reflection", speakers=t,
             definition="The therapist reflects back what the client said or meant, repeating, rephrasing or "
                        "guessing at the client's feelings and meaning, as a statement rather than a question.",
             when_to_use=["the utterance mirrors or paraphrases the client's previous words",
                          "the therapist names a feeling or meaning the client implied"],
             examples=["So you're feeling pretty stuck between wanting to quit and enjoying it.",
                       "It sounds like your family has been worried about you.",
                       "You've tried to cut down before and it didn't last.",
                       "Part of you wants things to change, and part of you isn't sure it's worth it.",
                       "You're frustrated that everyone keeps telling you what to do.",
                       "So drinking helps you relax after a long shift."],
             counter_examples=["How much do you drink on a typical night?",
                               "Many people find that a nicotine patch helps with cravings."]),
        Code(id="MI.QUESTION", name="Question", speakers=t,
             definition="The therapist asks the client for information, opinions or reflections, with an open "
                        "or a closed question.",
             when_to_use=["the utterance asks something of the client"],
             examples=["What would you like to talk about today?",
                       "How many cigarettes do you smoke a day?",
                       "What worries you most about your drinking?",
                       "Have you ever tried to stop before?",
                       "How would your life be different if you made this change?",
                       "On a scale from one to ten, how important is it for you to change?"],
             counter_examples=["So you're not sure you want to stop right now.",
                               "Okay, that makes sense."]),
        Code(id="MI.INPUT", name="Therapist input", speakers=t,
             definition="The therapist gives information, advice, options or negotiates a plan or the "
                        "agenda: input from the therapist's side rather than the client's.",
             when_to_use=["the therapist shares facts, recommendations, suggestions or choices",
                          "the therapist proposes what to do next or how to structure the session"],
             examples=["Drinking more than fourteen units a week raises the risk of liver disease.",
                       "I'd suggest keeping a diary of when you feel the urge to smoke.",
                       "Some people use nicotine gum, others prefer to set a quit date; there are several options.",
                       "We have about twenty minutes left, so maybe we could look at your plan for the weekend.",
                       "The medication works best if you take it at the same time every day.",
                       "Exercise even twice a week can really help with your blood pressure."],
             counter_examples=["What do you know about the risks of drinking?",
                               "You already know quite a lot about what smoking does."]),
        Code(id="MI.OTHER", name="Other", speakers=t,
             definition="Any other therapist utterance: greetings, short acknowledgements and backchannels, "
                        "affirmations, filler, thanks, and talk that is not a reflection, a question or input.",
             when_to_use=["minimal encouragers and acknowledgements", "greetings, thanks and closings"],
             examples=["Mm-hmm.", "Okay.", "Right, yeah.", "Hi, nice to meet you, come on in.",
                       "Thank you for coming in today.", "That's great, well done.", "I see."],
             counter_examples=["So you're ready to give it a try.", "How did that feel?"]),
    ]
    return Codebook(id="bench_annomi_therapist", version="1.0.0", title="AnnoMI therapist behaviour",
                    description="Main therapist behaviour of AnnoMI (Wu et al. 2022), one code per class.",
                    codes=codes)


def annomi_client_codebook() -> Codebook:
    """MI client talk type: change, neutral, sustain (client utterances)."""
    c = ["client"]
    codes = [
        Code(id="CT.CHANGE", name="Change talk", speakers=c,
             definition="The client speaks in favour of changing the target behaviour: desire, ability, "
                        "reasons, need or commitment to change, or steps already taken toward it.",
             examples=["I really want to be there for my kids, so I need to cut down.",
                       "I think I could stop if I had some help.",
                       "I've already thrown away my last pack of cigarettes.",
                       "My health is getting worse and I can't keep going like this.",
                       "I'm going to try not drinking during the week.",
                       "It would be nice to have more energy in the mornings."],
             counter_examples=["I don't really see a problem with a few beers.", "I work at the warehouse."]),
        Code(id="CT.NEUTRAL", name="Neutral talk", speakers=c,
             definition="Client talk that is neither for nor against the change: information, answers about "
                        "circumstances, backchannels and talk unrelated to the target behaviour.",
             examples=["Yeah.", "I work nights at the hospital.", "About two years ago, I think.",
                       "My sister lives with us at the moment.", "Okay.", "I usually have dinner around seven."],
             counter_examples=["I want to quit for my daughter.", "Smoking is the only thing that calms me down."]),
        Code(id="CT.SUSTAIN", name="Sustain talk", speakers=c,
             definition="The client speaks in favour of the status quo: reasons for keeping the behaviour, "
                        "doubts about changing, low ability or commitment, or resistance to change.",
             examples=["I don't think my drinking is that bad.",
                       "Smoking is the only thing that helps me relax.",
                       "I've tried quitting loads of times and it never works.",
                       "Everyone I know drinks like this, it's normal.",
                       "I'm not ready to give it up right now.",
                       "Honestly I just enjoy it too much to stop."],
             counter_examples=["I'd like to feel healthier.", "I drink mostly on weekends."]),
    ]
    return Codebook(id="bench_annomi_client", version="1.0.0", title="AnnoMI client talk type",
                    description="Client talk type of AnnoMI (Wu et al. 2022), one code per class.", codes=codes)


_EPITOME: dict[str, dict[str, object]] = {
    "ER": {
        "name": "Emotional reactions",
        "what": "expressing warmth, compassion or concern for the seeker",
        "none": ["You should talk to your doctor about changing your medication.",
                 "Try going to bed at the same time every night.",
                 "Have you tried looking for a new job?",
                 "That's just how the system works, unfortunately.",
                 "Join a gym, it helped my mood a lot."],
        "weak": ["Hang in there, things will get better.",
                 "Stay strong, you've got this.",
                 "Everything will be okay.",
                 "Sending good vibes your way.",
                 "Don't give up, it gets easier."],
        "strong": ["I'm so sorry you're going through this, it breaks my heart.",
                   "I really feel for you, that sounds awful.",
                   "I'm genuinely worried about you and I care about what happens to you.",
                   "My heart goes out to you, I'm so sad to hear this.",
                   "I'm really glad you reached out, and I'm so sorry it hurts this much."],
        "weak_def": "alludes to the seeker's emotions or offers general encouragement without naming a feeling",
        "strong_def": "explicitly states the responder's own feelings of warmth, sorrow, care or concern",
    },
    "IP": {
        "name": "Interpretations",
        "what": "communicating an understanding of the seeker's feelings or experience",
        "none": ["Just go for a run, it always helps.",
                 "You need to see a therapist.",
                 "What kind of music do you like?",
                 "Stay strong.",
                 "Delete his number and move on."],
        "weak": ["I understand how you feel.",
                 "I know what you mean.",
                 "I get it.",
                 "That makes sense.",
                 "I can see where you're coming from."],
        "strong": ["It must be exhausting to feel like nobody notices how hard you're trying.",
                   "Losing your job right after the breakup must make everything feel hopeless.",
                   "I went through the same thing after my dad died; the guilt kept me awake for months.",
                   "It sounds like you feel trapped between your parents' expectations and what you want.",
                   "I also had panic attacks before exams, and the fear of the next one was the worst part."],
        "weak_def": "a generic statement of understanding that does not say what is understood",
        "strong_def": "names the seeker's specific feeling or situation, or shares a similar experience of one's own",
    },
    "EX": {
        "name": "Explorations",
        "what": "exploring the seeker's feelings or experience by asking about them",
        "none": ["I'm sorry you're going through this.",
                 "You should talk to a counsellor.",
                 "It gets better, trust me.",
                 "I had the same problem last year.",
                 "Take it one day at a time."],
        "weak": ["What happened?",
                 "Do you want to talk about it?",
                 "How are you doing now?",
                 "What's going on?",
                 "Want to tell me more?"],
        "strong": ["Are you feeling lonely since you moved to the new city?",
                   "What was it about your friend's comment that hurt you the most?",
                   "When you say you feel empty, is that most of the day or mostly at night?",
                   "Do you feel like your family doesn't take your depression seriously?",
                   "How did you feel when your boss said that in front of everyone?"],
        "weak_def": "a generic question or invitation to share, not about anything specific",
        "strong_def": "a specific question about the seeker's particular feelings or experience",
    },
}


def epitome_codebook(mechanism: str) -> Codebook:
    """EPITOME levels 0/1/2 of one mechanism (``ER``, ``IP`` or ``EX``), for peer responses."""
    m = _EPITOME[mechanism]
    s = ["therapist"]  # the responder; the seeker's post is a 'client' segment used as context only
    codes = [
        Code(id=f"{mechanism}.NONE", name=f"{m['name']}: none (0)", speakers=s,
             definition=f"The response does not show {m['name'].lower()} ({m['what']}): for example advice, "
                        "information or talk about something else only.",
             examples=list(m["none"]), counter_examples=[list(m["weak"])[0], list(m["strong"])[0]]),
        Code(id=f"{mechanism}.WEAK", name=f"{m['name']}: weak (1)", speakers=s,
             definition=f"Weak {m['name'].lower()} ({m['what']}): the response {m['weak_def']}.",
             examples=list(m["weak"]), counter_examples=[list(m["strong"])[1], list(m["none"])[1]]),
        Code(id=f"{mechanism}.STRONG", name=f"{m['name']}: strong (2)", speakers=s,
             definition=f"Strong {m['name'].lower()} ({m['what']}): the response {m['strong_def']}.",
             examples=list(m["strong"]), counter_examples=[list(m["weak"])[1], list(m["none"])[2]]),
    ]
    return Codebook(id=f"bench_epitome_{mechanism.lower()}", version="1.0.0",
                    title=f"EPITOME {m['name']} (levels 0/1/2)",
                    description="EPITOME (Sharma et al. 2020), Reddit portion; one code per level.", codes=codes)
