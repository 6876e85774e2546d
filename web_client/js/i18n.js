// Every visible string of the pages, in Simplified Chinese (zh-CN) and English (en).
//
// The language: the one chosen with the switch (select#lang, kept in localStorage), else the
// first of navigator.languages that is Chinese or English, else English. <html lang> follows.
// Markup names its strings with data-i18n="key" (text) and data-i18n-attr="attr:key;attr:key";
// scripts call t(key, {vars}) and re-render on the "tw:langchange" window event.
// The live session view (sessionview.js) gets `sessionI18n()`: a function t(key, vars) that also
// carries .t and .lang, reading the current language at each call. Its keys are the "sv." ones.

import { SERVER_PATTERNS, WORDS_EN, WORDS_ZH } from "./words.js";

const STORE_KEY = "tutorwire.lang";
export const LANGS = ["zh-CN", "en"];

const en = {
  "app.name": "Tutorwire",
  "app.skip": "Skip to the main content",
  "lang.label": "Language",
  "lang.zh-CN": "中文",
  "lang.en": "English",
  "nav.signedInAs": "Signed in as {user} ({role})",
  "nav.signout": "Sign out",
  "nav.recordings": "Recordings",
  "nav.home": "Home",
  "role.student": "student",
  "role.tutor": "tutor",
  "role.admin": "admin",
  "role.researcher": "researcher",
  "conn.connecting": "Connecting…",
  "conn.open": "Connected",
  "conn.retrying": "Connection lost; trying again in {s} s",
  "conn.refused": "Your sign-in was refused. Please sign in again.",
  "error.network": "No answer from the server. Check your connection and try again.",
  "error.generic": "That did not work: {msg}",
  "error.conflict": "Not possible right now: {msg}",

  "signin.title": "Sign in",
  "signin.intro": "Development sign-in: choose a user name and a role. There is no password.",
  "signin.user": "User name",
  "signin.userHint": "1 to 64 letters, digits or _ . @ -",
  "signin.role": "Role",
  "signin.go": "Sign in",
  "signin.busy": "Signing in…",
  "signin.devOff": "Development sign-in is switched off on this server. Please sign in through your programme's sign-in page.",
  "signin.why.expired": "Your sign-in has expired. Please sign in again.",
  "signin.why.role": "That page is for the {roles} role. Sign in with that role.",
  "signin.why.signin": "Please sign in first.",
  "signin.current": "You are signed in as {user} ({role}).",
  "signin.continue": "Continue",

  "subject.math": "Mathematics",
  "subject.chinese": "Chinese",
  "subject.english": "English",
  "subject.physics": "Physics",
  "subject.chemistry": "Chemistry",
  "subject.biology": "Biology",

  "student.title": "Ask a tutor",
  "ask.legend": "Your question",
  "ask.subject": "Subject",
  "ask.grade": "Grade (1–12)",
  "ask.kps": "Knowledge points",
  "ask.kpsHint": "Ids separated by commas, e.g. math.algebra.linear-equations",
  "ask.suggestions": "Add a common one:",
  "ask.addKp": "Add {kp}",
  "ask.text": "Your question in a few words (optional)",
  "ask.favourite": "Favourite tutor (optional)",
  "ask.favouriteHint": "The tutor's id, e.g. li.jun",
  "ask.direct": "Ask only this tutor",
  "ask.go": "Ask for a tutor",
  "ask.sending": "Sending…",
  "status.waiting": "Waiting for a tutor… {time}",
  "status.offered": "A tutor is looking at your question… {time}",
  "status.matched": "Your tutor is here. The session is starting.",
  "status.cancelled": "You cancelled your request.",
  "status.expired": "No tutor was free in time. Please ask again.",
  "status.cancel": "Cancel the request",
  "status.ended": "The session has ended.",
  "session.heading": "Your session",
  "session.leave": "Leave the session",
  "session.end": "End the session",
  "session.loadFailed": "The session could not be opened: {msg}",
  "rate.title": "How was the session?",
  "rate.rating": "Your rating",
  "rate.star1": "1 – not helpful",
  "rate.star2": "2",
  "rate.star3": "3",
  "rate.star4": "4",
  "rate.star5": "5 – very helpful",
  "rate.check": "Short check: percent answered right (optional)",
  "rate.go": "Send rating",
  "rate.skip": "Skip",
  "rate.thanks": "Thank you! Your rating helps match you with the right tutor.",
  "rate.already": "This session has been rated already.",
  "rate.needRating": "Please choose a rating from 1 to 5.",
  "rate.checkRange": "Please give a number from 0 to 100, or leave it empty.",

  "field.subject": "Subject",
  "field.grade": "Grade",
  "field.knowledge_points": "Knowledge points",
  "field.text": "Question",
  "field.favourite": "Favourite tutor",
  "field.direct": "Ask only this tutor",
  "field.rating": "Rating",
  "field.check": "Check",
  "field.body": "Request",
  "field.user": "User name",
  "field.role": "Role",
  "server.grade": "must be a school grade from 1 to 12",
  "server.knowledge_points": "must be a list of knowledge point ids",
  "server.favourite.none": "no such tutor",
  "server.favourite.subject": "this tutor does not teach the subject",
  "server.favourite.id": "must be a tutor id or null",
  "server.direct": "a direct request must name the tutor in favourite",
  "server.user": "must be 1-64 of A-Z a-z 0-9 _ . @ -",
  "server.open": "you already have an open request; cancel it first",

  "tutor.title": "Tutor desk",
  "tutor.available": "Available for offers",
  "tutor.state.offline": "You are offline. Press “Available for offers” to start.",
  "tutor.state.available": "You are available. Offers will appear here.",
  "tutor.state.offered": "You have an offer. Please answer it.",
  "tutor.state.in_session": "You are in a session.",
  "tutor.timedOut": "You went offline (no heartbeat for a while). Press “Available for offers” again.",
  "offer.heading": "New request",
  "offer.subject": "Subject",
  "offer.grade": "Grade",
  "offer.kps": "Knowledge points",
  "offer.text": "Question",
  "offer.waiting": "Waiting for",
  "offer.student": "Student",
  "offer.direct": "Asked for you by name",
  "offer.favourite": "You are this student's favourite",
  "offer.countdown": "{s} s left to answer",
  "offer.accept": "Accept",
  "offer.decline": "Decline",
  "offer.withdrawn": "The offer was withdrawn: {reason}",
  "reason.cancelled": "the student cancelled",
  "reason.declined": "you declined",
  "reason.lease expired": "the time to answer ran out",
  "reason.tutor went offline": "you went offline",
  "reason.expired": "the request expired",
  "offers.heading": "Offers this evening",
  "offers.empty": "No offers yet this evening.",
  "offers.item": "{time} · {subject}, grade {grade} · {state}",
  "offerState.offered": "open",
  "offerState.accepted": "accepted",
  "offerState.declined": "declined",
  "offerState.withdrawn": "withdrawn",
  "offerState.expired": "timed out",
  "sessions.heading": "Sessions tonight",
  "sessions.count": "Sessions tonight: {n}",
  "sessions.empty": "No sessions yet tonight.",
  "sessions.item": "{time} · {subject}, grade {grade}",
  "sessions.current": "(now)",
  "none": "—",

  "replay.title": "Recordings",
  "replay.list.heading": "Your recordings",
  "replay.list.empty": "No recordings yet.",
  "replay.list.started": "Started",
  "replay.list.duration": "Length",
  "replay.list.people": "Participants",
  "replay.list.status": "Status",
  "replay.list.open": "Replay",
  "recStatus.recording": "recording",
  "recStatus.complete": "complete",
  "recStatus.interrupted": "interrupted",
  "replay.back": "All recordings",
  "replay.loading": "Loading the recording…",
  "replay.loadFailed": "The recording could not be loaded: {msg}",
  "replay.play": "Play",
  "replay.pause": "Pause",
  "replay.seek": "Position",
  "replay.speed": "Speed",
  "replay.pages": "Pages",
  "replay.page": "Page {n}",
  "replay.follow": "Follow the writing",
  "replay.clock": "{now} / {total}",
  "replay.audio.tutor": "Tutor's voice",
  "replay.audio.student": "Student's voice",
  "replay.audio.none": "No voice was recorded; ink plays on its own.",
  "replay.tapHint": "Tap a stroke to hear what was said as it was written.",
  "replay.canvas": "The session's ink at the current time",
  "replay.jumped": "Jumped to {time}, when this stroke was written.",
  "replay.list.more": "{names} and {n} more",
  "replay.audio.presenter": "Teacher's voice",
  "replay.audio.viewer": "{user} on stage",
  "replay.floor.heading": "Hands, questions and the stage",
  "replay.floor.question": "{who} asked: {text}",
  "replay.floor.handUp": "{who} raised a hand",
  "replay.floor.handDown": "{who} lowered the hand",
  "replay.floor.stage.invite": "{who} invited {target} to the stage",
  "replay.floor.stage.accept": "{target} came on stage",
  "replay.floor.stage.leave": "{target} left the stage",
  "replay.floor.moderate.mute": "{who} muted {target}",
  "replay.floor.moderate.unmute": "{who} unmuted {target}",
  "replay.floor.moderate.remove": "{who} removed {target}",
  "replay.floor.moderate.lower_hand": "{who} lowered {target}'s hand",
  "replay.floor.moderate.lower_all_hands": "{who} lowered all hands",

  // The live session view (sessionview.js): exactly the keys it documents.
  "sv.connecting": "Connecting to the session…",
  "sv.connected": "Connected",
  "sv.reconnecting": "Connection lost; reconnecting…",
  "sv.ended": "The session has ended.",
  "sv.error": "Session error: {msg}",
  "sv.poor": "Poor connection",
  "sv.rtt": "{ms} ms",
  "sv.tool.pen": "Pen",
  "sv.tool.eraser": "Eraser",
  "sv.color": "Colour",
  "sv.colorName.black": "Black",
  "sv.colorName.blue": "Blue",
  "sv.colorName.red": "Red",
  "sv.colorName.green": "Green",
  "sv.width": "Line width",
  "sv.undo": "Undo",
  "sv.clear": "Clear the page",
  "sv.pageOf": "Page {n} of {total}",
  "sv.pagePrev": "Previous page",
  "sv.pageNext": "Next page",
  "sv.pageAdd": "New page",
  "sv.mute": "Mute microphone",
  "sv.unmute": "Unmute microphone",
  "sv.micDenied": "The microphone is blocked. Allow it in the browser to talk.",
  "sv.speaking": "{who} is speaking",
  "sv.silent": "{who} is not speaking",
  "sv.peerOnline": "{who} is here",
  "sv.peerOffline": "{who} has left",
  "sv.tutor": "Tutor",
  "sv.student": "Student",
  "sv.canvas": "Shared writing page",
  "sv.toolbar": "Writing tools",
  "sv.eraseOwnOnly": "The eraser removes only your own writing.",

  // live classes (class.js, class-new.js, classes.js)
  "nav.classes": "Live classes",
  "nav.tutor": "Tutor desk",
  "classes.title": "Live classes",
  "classes.codeLabel": "Class code",
  "classes.codeHint": "The six characters your teacher gave you",
  "classes.codeGo": "Find the class",
  "classes.codeUnknown": "No open class has this code. Check it with your teacher.",
  "classes.new": "New live class",
  "classes.list": "Your classes",
  "classes.none": "No classes yet.",
  "classNew.title": "New live class",
  "classNew.titleField": "Title",
  "classNew.start": "Starts at",
  "classNew.duration": "Length in minutes",
  "classNew.who": "Who may join",
  "classNew.whoLink": "Anyone with the link or the code",
  "classNew.whoSchool": "The students of a school",
  "classNew.school": "School id",
  "classNew.whoStudents": "These students",
  "classNew.students": "Student ids, separated by commas or lines",
  "classNew.go": "Schedule the class",
  "classNew.done": "The class is scheduled",
  "classNew.doneHint": "Give your students the link or the code. Open the class at its start time.",
  "classNew.open": "Open the class",
  "classNew.another": "Schedule another",
  "class.pageTitle": "Live class",
  "class.meta": "{subject} · grade {grade} · {when} · {minutes} min · {state}",
  "class.state.scheduled": "scheduled",
  "class.state.live": "live now",
  "class.state.ended": "ended",
  "class.state.cancelled": "cancelled",
  "class.over.ended": "This class has ended.",
  "class.over.cancelled": "This class was cancelled.",
  "class.endedForYou": "The teacher has taken you out of this class.",
  "class.share": "Invite your students",
  "class.link": "Join link",
  "class.code": "Class code",
  "class.join": "Join the class",
  "class.joinHint": "You will see the teacher's pages and hear the teacher. Raise your hand or ask in writing.",
  "class.start": "Start the class",
  "class.startHint": "Your students see your pages and hear you once you start.",
  "class.attendance": "Students here: {n}",
  "class.raiseHand": "Raise your hand",
  "class.lowerHand": "Lower your hand",
  "class.askLabel": "Ask the teacher in writing",
  "class.askGo": "Send the question",
  "class.askNotSent": "Not sent: wait until you are connected.",
  "class.invited": "The teacher invites you to the stage: you can write and speak.",
  "class.accept": "Go on stage",
  "class.decline": "No, thanks",
  "class.onStage": "You are on stage: write on the page and speak.",
  "class.leaveStage": "Leave the stage",
  "class.stage": "On stage",
  "class.stageEmpty": "Nobody is on stage.",
  "class.stateOn": "on stage",
  "class.stateInvited": "invited",
  "class.sendBack": "Send back",
  "class.withdraw": "Withdraw the invitation",
  "class.hands": "Raised hands",
  "class.invite": "Invite to the stage",
  "class.lower": "Lower the hand",
  "class.mute": "Mute",
  "class.unmute": "Unmute",
  "class.remove": "Remove",
  "class.removeConfirm": "Remove {user} from the class? They cannot come back.",
  "class.lowerAll": "Lower all hands",
  "class.questions": "Questions",
  "class.end": "End the class",
  "class.endConfirm": "End the class for everyone?",
  "class.usePad": "Write with my writing pad",
  "tutor.usePad": "Use my writing pad",
  "pad.code": "Writing pad code: ",
  "pad.how": " (works once, for {minutes} min). On this PC run: ",
  "pad.failed": "No pairing code: {error}",
  "sv.presenter": "Teacher",
  "sv.viewer": "Student on stage",
};

const zh = {
  "app.name": "Tutorwire 在线辅导",
  "app.skip": "跳到主要内容",
  "lang.label": "语言",
  "lang.zh-CN": "中文",
  "lang.en": "English",
  "nav.signedInAs": "已登录：{user}（{role}）",
  "nav.signout": "退出登录",
  "nav.recordings": "录像回放",
  "nav.home": "首页",
  "role.student": "学生",
  "role.tutor": "教师",
  "role.admin": "管理员",
  "role.researcher": "研究人员",
  "conn.connecting": "正在连接…",
  "conn.open": "已连接",
  "conn.retrying": "连接中断，{s} 秒后重试",
  "conn.refused": "登录凭证无效，请重新登录。",
  "error.network": "服务器没有响应。请检查网络后重试。",
  "error.generic": "操作未成功：{msg}",
  "error.conflict": "现在无法进行：{msg}",

  "signin.title": "登录",
  "signin.intro": "开发环境登录：选择用户名和角色，无需密码。",
  "signin.user": "用户名",
  "signin.userHint": "1 到 64 个字母、数字或 _ . @ -",
  "signin.role": "角色",
  "signin.go": "登录",
  "signin.busy": "正在登录…",
  "signin.devOff": "本服务器未开启开发环境登录。请通过项目的正式登录页面登录。",
  "signin.why.expired": "登录已过期，请重新登录。",
  "signin.why.role": "该页面需要“{roles}”角色，请用该角色登录。",
  "signin.why.signin": "请先登录。",
  "signin.current": "你已以 {user}（{role}）身份登录。",
  "signin.continue": "继续",

  "subject.math": "数学",
  "subject.chinese": "语文",
  "subject.english": "英语",
  "subject.physics": "物理",
  "subject.chemistry": "化学",
  "subject.biology": "生物",

  "student.title": "找老师答疑",
  "ask.legend": "你的问题",
  "ask.subject": "科目",
  "ask.grade": "年级（1–12）",
  "ask.kps": "知识点",
  "ask.kpsHint": "用逗号分隔的知识点编号，例如 math.algebra.linear-equations",
  "ask.suggestions": "常用知识点：",
  "ask.addKp": "添加 {kp}",
  "ask.text": "简单描述你的问题（选填）",
  "ask.favourite": "喜欢的老师（选填）",
  "ask.favouriteHint": "老师的编号，例如 li.jun",
  "ask.direct": "只问这位老师",
  "ask.go": "找老师",
  "ask.sending": "正在发送…",
  "status.waiting": "正在等待老师… {time}",
  "status.offered": "有老师正在看你的问题… {time}",
  "status.matched": "老师来了，辅导马上开始。",
  "status.cancelled": "你已取消了这次提问。",
  "status.expired": "暂时没有空闲的老师，请重新提问。",
  "status.cancel": "取消提问",
  "status.ended": "本次辅导已结束。",
  "session.heading": "辅导中",
  "session.leave": "离开辅导",
  "session.end": "结束辅导",
  "session.loadFailed": "无法打开辅导：{msg}",
  "rate.title": "这次辅导怎么样？",
  "rate.rating": "你的评分",
  "rate.star1": "1 – 没有帮助",
  "rate.star2": "2",
  "rate.star3": "3",
  "rate.star4": "4",
  "rate.star5": "5 – 很有帮助",
  "rate.check": "小测验：答对的百分比（选填）",
  "rate.go": "提交评分",
  "rate.skip": "跳过",
  "rate.thanks": "谢谢！你的评分能帮助我们为你找到更合适的老师。",
  "rate.already": "这次辅导已经评过分了。",
  "rate.needRating": "请选择 1 到 5 分。",
  "rate.checkRange": "请填写 0 到 100 之间的数字，或留空。",

  "field.subject": "科目",
  "field.grade": "年级",
  "field.knowledge_points": "知识点",
  "field.text": "问题",
  "field.favourite": "喜欢的老师",
  "field.direct": "只问这位老师",
  "field.rating": "评分",
  "field.check": "小测验",
  "field.body": "请求",
  "field.user": "用户名",
  "field.role": "角色",
  "server.grade": "请填写 1 到 12 之间的年级",
  "server.knowledge_points": "请填写知识点编号，用逗号分隔",
  "server.favourite.none": "没有这位老师",
  "server.favourite.subject": "这位老师不教这个科目",
  "server.favourite.id": "请填写老师的编号，或留空",
  "server.direct": "只问一位老师时，请填写这位老师的编号",
  "server.user": "请用 1 到 64 个字母、数字或 _ . @ -",
  "server.open": "你还有一个未结束的提问，请先取消它",

  "tutor.title": "教师工作台",
  "tutor.available": "接受辅导请求",
  "tutor.state.offline": "你目前离线。点击“接受辅导请求”开始。",
  "tutor.state.available": "你已上线，新的请求会显示在这里。",
  "tutor.state.offered": "你收到一个请求，请尽快回复。",
  "tutor.state.in_session": "你正在辅导中。",
  "tutor.timedOut": "由于长时间没有心跳，你已离线。请再次点击“接受辅导请求”。",
  "offer.heading": "新的辅导请求",
  "offer.subject": "科目",
  "offer.grade": "年级",
  "offer.kps": "知识点",
  "offer.text": "问题",
  "offer.waiting": "已等待",
  "offer.student": "学生",
  "offer.direct": "学生点名请你辅导",
  "offer.favourite": "你是这位学生喜欢的老师",
  "offer.countdown": "还剩 {s} 秒回复",
  "offer.accept": "接受",
  "offer.decline": "拒绝",
  "offer.withdrawn": "请求已撤回：{reason}",
  "reason.cancelled": "学生取消了提问",
  "reason.declined": "你拒绝了",
  "reason.lease expired": "回复时间已过",
  "reason.tutor went offline": "你已离线",
  "reason.expired": "请求已过期",
  "offers.heading": "今晚的请求",
  "offers.empty": "今晚还没有请求。",
  "offers.item": "{time} · {subject}，{grade} 年级 · {state}",
  "offerState.offered": "待回复",
  "offerState.accepted": "已接受",
  "offerState.declined": "已拒绝",
  "offerState.withdrawn": "已撤回",
  "offerState.expired": "已超时",
  "sessions.heading": "今晚的辅导",
  "sessions.count": "今晚已辅导：{n} 次",
  "sessions.empty": "今晚还没有辅导。",
  "sessions.item": "{time} · {subject}，{grade} 年级",
  "sessions.current": "（进行中）",
  "none": "—",

  "replay.title": "录像回放",
  "replay.list.heading": "你的辅导录像",
  "replay.list.empty": "还没有录像。",
  "replay.list.started": "开始时间",
  "replay.list.duration": "时长",
  "replay.list.people": "参与者",
  "replay.list.status": "状态",
  "replay.list.open": "回放",
  "recStatus.recording": "录制中",
  "recStatus.complete": "完整",
  "recStatus.interrupted": "中断",
  "replay.back": "全部录像",
  "replay.loading": "正在加载录像…",
  "replay.loadFailed": "无法加载录像：{msg}",
  "replay.play": "播放",
  "replay.pause": "暂停",
  "replay.seek": "播放位置",
  "replay.speed": "速度",
  "replay.pages": "页面",
  "replay.page": "第 {n} 页",
  "replay.follow": "跟随书写",
  "replay.clock": "{now} / {total}",
  "replay.audio.tutor": "老师的声音",
  "replay.audio.student": "学生的声音",
  "replay.audio.none": "没有录到声音，只回放书写。",
  "replay.tapHint": "点一下笔迹，就能听到写这一笔时说的话。",
  "replay.canvas": "当前时间的书写内容",
  "replay.jumped": "已跳到 {time}，这一笔是这时写的。",
  "replay.list.more": "{names} 等 {n} 人",
  "replay.audio.presenter": "老师的声音",
  "replay.audio.viewer": "{user}（台上）",
  "replay.floor.heading": "举手、提问和上台",
  "replay.floor.question": "{who} 提问：{text}",
  "replay.floor.handUp": "{who} 举手",
  "replay.floor.handDown": "{who} 放下了手",
  "replay.floor.stage.invite": "{who} 邀请 {target} 上台",
  "replay.floor.stage.accept": "{target} 上台",
  "replay.floor.stage.leave": "{target} 下台",
  "replay.floor.moderate.mute": "{who} 将 {target} 静音",
  "replay.floor.moderate.unmute": "{who} 取消了 {target} 的静音",
  "replay.floor.moderate.remove": "{who} 移出了 {target}",
  "replay.floor.moderate.lower_hand": "{who} 放下了 {target} 的手",
  "replay.floor.moderate.lower_all_hands": "{who} 放下了所有人的手",

  "sv.connecting": "正在连接辅导…",
  "sv.connected": "已连接",
  "sv.reconnecting": "连接中断，正在重连…",
  "sv.ended": "本次辅导已结束。",
  "sv.error": "辅导出错：{msg}",
  "sv.poor": "网络较差",
  "sv.rtt": "{ms} 毫秒",
  "sv.tool.pen": "笔",
  "sv.tool.eraser": "橡皮",
  "sv.color": "颜色",
  "sv.colorName.black": "黑色",
  "sv.colorName.blue": "蓝色",
  "sv.colorName.red": "红色",
  "sv.colorName.green": "绿色",
  "sv.width": "线条粗细",
  "sv.undo": "撤销",
  "sv.clear": "清空本页",
  "sv.pageOf": "第 {n} 页，共 {total} 页",
  "sv.pagePrev": "上一页",
  "sv.pageNext": "下一页",
  "sv.pageAdd": "新建一页",
  "sv.mute": "关闭麦克风",
  "sv.unmute": "打开麦克风",
  "sv.micDenied": "麦克风被禁用了。请在浏览器中允许使用麦克风才能通话。",
  "sv.speaking": "{who}正在说话",
  "sv.silent": "{who}没有说话",
  "sv.peerOnline": "{who}在线",
  "sv.peerOffline": "{who}已离开",
  "sv.tutor": "老师",
  "sv.student": "学生",
  "sv.canvas": "共享书写页面",
  "sv.toolbar": "书写工具",
  "sv.eraseOwnOnly": "橡皮只能擦掉你自己写的内容。",

  // 直播课
  "nav.classes": "直播课",
  "nav.tutor": "辅导台",
  "classes.title": "直播课",
  "classes.codeLabel": "课堂码",
  "classes.codeHint": "老师给你的六位课堂码",
  "classes.codeGo": "查找课堂",
  "classes.codeUnknown": "没有使用这个课堂码的课堂。请向老师核对。",
  "classes.new": "新建直播课",
  "classes.list": "你的课堂",
  "classes.none": "还没有课堂。",
  "classNew.title": "新建直播课",
  "classNew.titleField": "标题",
  "classNew.start": "开始时间",
  "classNew.duration": "时长（分钟）",
  "classNew.who": "谁可以加入",
  "classNew.whoLink": "任何拿到链接或课堂码的学生",
  "classNew.whoSchool": "某所学校的学生",
  "classNew.school": "学校编号",
  "classNew.whoStudents": "以下学生",
  "classNew.students": "学生编号，用逗号或换行分隔",
  "classNew.go": "安排课堂",
  "classNew.done": "课堂已安排",
  "classNew.doneHint": "把链接或课堂码发给学生。到开始时间打开课堂。",
  "classNew.open": "打开课堂",
  "classNew.another": "再安排一节",
  "class.pageTitle": "直播课",
  "class.meta": "{subject} · {grade} 年级 · {when} · {minutes} 分钟 · {state}",
  "class.state.scheduled": "未开始",
  "class.state.live": "正在上课",
  "class.state.ended": "已结束",
  "class.state.cancelled": "已取消",
  "class.over.ended": "本节课已结束。",
  "class.over.cancelled": "本节课已取消。",
  "class.endedForYou": "老师已将你移出本节课。",
  "class.share": "邀请学生",
  "class.link": "加入链接",
  "class.code": "课堂码",
  "class.join": "加入课堂",
  "class.joinHint": "你会看到老师的板书、听到老师讲课。可以举手或用文字提问。",
  "class.start": "开始上课",
  "class.startHint": "开始后，学生会看到你的板书、听到你的声音。",
  "class.attendance": "{n} 名学生在线",
  "class.raiseHand": "举手",
  "class.lowerHand": "放下手",
  "class.askLabel": "用文字向老师提问",
  "class.askGo": "发送问题",
  "class.askNotSent": "未发送：请等连接恢复。",
  "class.invited": "老师邀请你上台：你可以在页面上书写并发言。",
  "class.accept": "上台",
  "class.decline": "不用了",
  "class.onStage": "你在台上：可以在页面上书写并发言。",
  "class.leaveStage": "下台",
  "class.stage": "台上",
  "class.stageEmpty": "台上没有学生。",
  "class.stateOn": "在台上",
  "class.stateInvited": "已邀请",
  "class.sendBack": "请下台",
  "class.withdraw": "撤回邀请",
  "class.hands": "举手",
  "class.invite": "邀请上台",
  "class.lower": "放下手",
  "class.mute": "静音",
  "class.unmute": "取消静音",
  "class.remove": "移出",
  "class.removeConfirm": "把 {user} 移出课堂？移出后不能再加入。",
  "class.lowerAll": "全部放下",
  "class.questions": "提问",
  "class.end": "结束课堂",
  "class.endConfirm": "为所有人结束本节课？",
  "class.usePad": "用我的手写板书写",
  "tutor.usePad": "使用我的手写板",
  "pad.code": "手写板配对码：",
  "pad.how": "（只能用一次，{minutes} 分钟内有效）。请在这台电脑上运行：",
  "pad.failed": "没有拿到配对码：{error}",
  "sv.presenter": "老师",
  "sv.viewer": "台上的学生",
};

Object.assign(en, WORDS_EN);
Object.assign(zh, WORDS_ZH);
export const STRINGS = { en, "zh-CN": zh };

function fromNavigator() {
  const prefs = navigator.languages?.length ? navigator.languages : [navigator.language || "en"];
  for (const tag of prefs) {
    const lower = String(tag).toLowerCase();
    if (lower.startsWith("zh")) return "zh-CN";
    if (lower.startsWith("en")) return "en";
  }
  return "en";
}

function initialLang() {
  try {
    const chosen = localStorage.getItem(STORE_KEY);
    if (LANGS.includes(chosen)) return chosen;
  } catch {
    // storage blocked: follow the browser
  }
  return fromNavigator();
}

let current = initialLang();

export function getLang() {
  return current;
}

/** The string `key` in the current language with {name} filled from `vars`; English, then the key, if missing. */
export function t(key, vars = {}) {
  const text = STRINGS[current][key] ?? en[key] ?? key;
  return text.replace(/\{([\w.]+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

/** True when `key` has a string (used to translate server sentences we know). */
export function has(key) {
  return key in en;
}

/** Fill every data-i18n / data-i18n-attr element under `root`, and <html lang>. */
export function applyI18n(root = document) {
  document.documentElement.lang = current;
  for (const el of root.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":").map((s) => s.trim());
      if (attr && key) el.setAttribute(attr, t(key));
    }
  }
}

/** Switch language, remember it, re-apply the markup, and tell the page ("tw:langchange"). */
export function setLang(lang) {
  if (!LANGS.includes(lang) || lang === current) return;
  current = lang;
  try {
    localStorage.setItem(STORE_KEY, lang);
  } catch {
    // not remembered; still switched
  }
  applyI18n();
  window.dispatchEvent(new CustomEvent("tw:langchange", { detail: { lang } }));
}

/** Fill select#lang with the languages and wire it up; apply the current language to the page. */
export function initI18n(select = document.getElementById("lang")) {
  if (select) {
    select.replaceChildren(...LANGS.map((lang) => {
      const option = document.createElement("option");
      option.value = lang;
      option.lang = lang;
      option.textContent = STRINGS[lang][`lang.${lang}`];
      return option;
    }));
    select.value = current;
    select.addEventListener("change", () => setLang(select.value));
  }
  applyI18n();
}

/** What mountSession gets as `i18n`: callable as i18n(key, vars), with .t(key, vars) and .lang. */
export function sessionI18n() {
  const fn = (key, vars) => t(key, vars);
  fn.t = fn;
  Object.defineProperty(fn, "lang", { get: getLang, enumerable: true });
  return fn;
}

/** m:ss (or h:mm:ss) for a duration in milliseconds. */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** A local clock time (HH:MM) for unix seconds, in the current language. */
export function formatClock(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleTimeString(current, { hour: "2-digit", minute: "2-digit" });
}

/** A local date and time for unix seconds, in the current language. */
export function formatDateTime(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleString(current, { dateStyle: "medium", timeStyle: "short" });
}

/**
 * A server error (ApiError) as one sentence in the current language: the field's name and a
 * translation of sentences we know, else the server's own sentence.
 */
export function errorText(err) {
  if (!err) return "";
  if (err.status === 0) return t("error.network");
  const sentence = fieldSentence(err);
  if (err.field && has(`field.${err.field}`)) return `${t(`field.${err.field}`)}: ${sentence}`;
  return sentence;
}

/**
 * The server's sentence of `err` in the current language (for beside its field): a sentence or
 * pattern we know, else a plain sentence for its HTTP status. The server's own words (English,
 * with ids) never reach the screen.
 */
export function fieldSentence(err) {
  if (err.status === 0) return t("error.network");
  const sentence = String(err.sentence ?? "");
  const known = SERVER_SENTENCES[sentence] ?? SERVER_PATTERNS.find(([re]) => re.test(sentence))?.[1];
  if (known) return t(known);
  const status = Number(err.status);
  if ([403, 404, 409, 422, 429].includes(status)) return t(`err.${status}`);
  return t(status >= 500 ? "err.500" : "err.other");
}

const SERVER_SENTENCES = {
  "must be a school grade from 1 to 12": "server.grade",
  "must be a list of knowledge point ids": "server.knowledge_points",
  "no such tutor": "server.favourite.none",
  "this tutor does not teach the subject": "server.favourite.subject",
  "must be a tutor id or null": "server.favourite.id",
  "a direct request must name the tutor in favourite": "server.direct",
  "must be 1-64 of A-Z a-z 0-9 _ . @ -": "server.user",
  "you already have an open request; cancel it first": "server.open",
  "must be an integer from 1 to 5": "rate.needRating",
  "must be a number from 0 to 1 (the share of the check answered right)": "rate.checkRange",
};
