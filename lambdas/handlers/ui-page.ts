// GET /ui: the live fleet page, one self-contained HTML document (inline CSS and JS, no request but to this API).

const STYLE = `
:root{--bg:#f4f6fa;--card:#fff;--ink:#1c2430;--muted:#6b7686;--line:#e2e7ef;--accent:#2f6fdb;
--idle:#e9eef5;--idle-ink:#51606f;--xpu:#f59f00;--host:#d9480f;--queued:#fcc419;--done:#2f9e44;--failed:#e03131;--held:#7048e8;--cancelled:#868e96}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--ink)}
header{display:flex;align-items:center;gap:16px;padding:12px 24px;background:#101828;color:#fff}
header h1{font-size:17px;margin:0;font-weight:600;letter-spacing:.2px}
header .sub{color:#98a2b3;font-size:12px}
header .spacer{flex:1}
header button{background:transparent;color:#d0d5dd;border:1px solid #344054;border-radius:6px;padding:5px 10px;cursor:pointer}
.live{display:inline-flex;align-items:center;gap:6px;font-size:12px;color:#d0d5dd}
.dot{width:8px;height:8px;border-radius:50%;background:#12b76a;box-shadow:0 0 0 3px rgba(18,183,106,.25)}
.dot.stale{background:#f04438;box-shadow:0 0 0 3px rgba(240,68,56,.25)}
main{padding:20px 24px;display:grid;gap:18px;grid-template-columns:repeat(12,1fr)}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px;min-width:0}
section h2{font-size:13px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);margin:0 0 10px;font-weight:600}
.span12{grid-column:span 12}.span8{grid-column:span 8}.span4{grid-column:span 4}.span6{grid-column:span 6}
@media (max-width:1000px){.span8,.span4,.span6{grid-column:span 12}}
.cards{display:grid;grid-template-columns:repeat(5,1fr);gap:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 16px}
.card .n{font-size:26px;font-weight:650}
.card .l{color:var(--muted);font-size:12px}
.racks{display:flex;flex-wrap:wrap;gap:14px}
.rack{border:1px solid var(--line);border-radius:8px;padding:10px;min-width:180px;background:#fafbfd}
.rack h3{margin:0 0 8px;font-size:12px;color:var(--muted);font-weight:600}
.nodes{display:flex;flex-wrap:wrap;gap:8px}
.node{width:150px;border-radius:8px;padding:8px 10px;background:var(--idle);color:var(--idle-ink);border:2px solid transparent}
.node b{display:block;font-size:13px;color:var(--ink)}
.node .st{font-size:11px}
.node[data-state=xpu-rebooting]{background:#fff4e0;border-color:var(--xpu)}
.node[data-state=host-rebooting]{background:#ffe8dc;border-color:var(--host)}
.node[data-state=queued]{background:#fff9db;border-color:var(--queued)}
.node.held{outline:2px dashed var(--held);outline-offset:2px}
.xpus{display:flex;gap:4px;margin-top:6px;flex-wrap:wrap}
.chip{font-size:10px;padding:1px 6px;border-radius:10px;background:#fff;border:1px solid var(--line);color:var(--muted)}
.chip.busy{background:var(--xpu);border-color:var(--xpu);color:#fff}
.chip.queued{background:var(--queued);border-color:var(--queued);color:#5c4400}
.chip.asked{border-color:var(--accent);color:var(--accent);border-style:dashed}
table{width:100%;border-collapse:collapse;font-size:13px}
th{text-align:left;color:var(--muted);font-weight:600;font-size:11px;text-transform:uppercase;letter-spacing:.05em;border-bottom:1px solid var(--line);padding:6px 8px}
td{padding:6px 8px;border-bottom:1px solid #f0f2f6;vertical-align:middle}
td.mono,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:11px;font-weight:600;color:#fff;background:var(--muted)}
.badge.notified,.badge.preparing,.badge.extended{background:var(--accent)}
.badge.rebooting,.badge.recovering{background:var(--xpu)}
.badge.queued{background:var(--queued);color:#5c4400}
.badge.completed,.badge.running{background:var(--done)}
.badge.failed,.badge.denied{background:var(--failed)}
.badge.paused{background:var(--held)}
.badge.cancelled{background:var(--cancelled)}
.empty{color:var(--muted);font-style:italic;padding:6px 0}
.bar{height:8px;border-radius:4px;background:#eef1f6;overflow:hidden;display:flex}
.bar i{display:block;height:100%}
.bar .d{background:var(--done)}.bar .f{background:var(--failed)}.bar .p{background:var(--xpu)}
.ro{padding:8px 0;border-bottom:1px solid #f0f2f6}
.ro:last-child{border-bottom:0}
.ro .top{display:flex;justify-content:space-between;align-items:center;gap:8px;margin-bottom:6px}
.ro .id{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:11px;color:var(--muted);margin-bottom:4px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.ro .count{white-space:nowrap;font-size:12px}
.ro .why{color:var(--muted);font-size:12px}
svg text{font-family:system-ui,sans-serif}
.legend{display:flex;gap:14px;flex-wrap:wrap;font-size:12px;color:var(--muted);margin-top:6px}
.legend span::before{content:"";display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;vertical-align:-1px;background:var(--c)}
#login{position:fixed;inset:0;background:rgba(16,24,40,.55);display:flex;align-items:center;justify-content:center}
#login form{background:#fff;border-radius:12px;padding:24px;width:360px;box-shadow:0 20px 40px rgba(0,0,0,.2)}
#login h2{margin:0 0 6px;font-size:18px}
#login p{margin:0 0 14px;color:var(--muted);font-size:13px}
#login input{width:100%;padding:9px 10px;border:1px solid #cfd6e1;border-radius:6px;font:inherit}
#login button{margin-top:12px;width:100%;padding:9px;border:0;border-radius:6px;background:var(--accent);color:#fff;font-weight:600;cursor:pointer}
#login .err{color:var(--failed);font-size:12px;min-height:16px;margin-top:8px}
[hidden]{display:none!important}
`;

const SCRIPT = `
(function(){
  var KEY='rebootctl.operatorToken', POLL_MS=3000, timer=null, last=null;
  var $=function(id){return document.getElementById(id)};
  function esc(s){return String(s==null?'':s).replace(/[&<>"']/g,function(c){return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]})}
  function token(){return sessionStorage.getItem(KEY)}
  function showLogin(msg){$('login').hidden=false;$('loginErr').textContent=msg||'';$('tok').focus()}
  function api(path){
    return fetch(new URL(path,location.href),{headers:{authorization:'Bearer '+token()},cache:'no-store'}).then(function(r){
      if(r.status===401||r.status===403){var e=new Error('the token was refused ('+r.status+')');e.auth=true;throw e}
      if(!r.ok)throw new Error('HTTP '+r.status);return r.json()});
  }
  function ago(iso){var s=Math.round((Date.now()-Date.parse(iso))/1000);return s<60?s+'s':s<3600?Math.round(s/60)+'m':Math.round(s/3600)+'h'}
  function until(iso){if(!iso)return '';var s=Math.round((Date.parse(iso)-Date.now())/1000);return s<=0?'due':s<60?'in '+s+'s':'in '+Math.round(s/60)+'m'}
  function badge(s){return '<span class="badge '+esc(s)+'">'+esc(s)+'</span>'}
  function stateLabel(s){return {idle:'idle','xpu-rebooting':'xPU rebooting','host-rebooting':'host rebooting',queued:'queued'}[s]||s}
  function render(f){
    last=f;
    var t=f.totals, live=f.rollouts.filter(function(r){return r.status==='running'||r.status==='paused'});
    $('cards').innerHTML=[[t.nodes,'nodes'],[t.inFlight,'reboots in flight'],[t.queued,'queued'],[t.unavailableNodes,'nodes unavailable'],[live.length,'rollouts running']]
      .map(function(c){return '<div class="card"><div class="n">'+c[0]+'</div><div class="l">'+c[1]+'</div></div>'}).join('');
    $('racks').innerHTML=f.racks.map(function(rack){
      return '<div class="rack" data-rack="'+esc(rack.rack)+'"><h3>RACK '+esc(rack.rack)+'</h3><div class="nodes">'+rack.nodes.map(function(n){
        var busy={};n.reboots.forEach(function(r){if(r.xpu)busy[r.xpu]=r.status});
        return '<div class="node'+(n.holds.length?' held':'')+'" data-node="'+esc(n.id)+'" data-state="'+esc(n.state)+'" title="'+esc(n.reboots.map(function(r){return r.id+' '+r.status}).join('\\n')||'no reboot')+'">'
          +'<b>'+esc(n.id)+'</b><span class="st">'+esc(stateLabel(n.state))+(n.holds.length?' · held':'')+'</span><div class="xpus">'
          +n.xpus.map(function(x){var s=busy[x]||((n.asked||[]).indexOf(x)>=0?'asked':'');return '<span class="chip'+(s?(s==='queued'||s==='asked'?' '+s:' busy'):'')+'" title="'+(s==='asked'?'a rollout asked it to reboot':'')+'">'+esc(x)+(s?' · '+esc(s):'')+'</span>'}).join('')
          +(n.reboots.some(function(r){return r.kind==='host'})?'<span class="chip busy">host</span>':'')+'</div></div>'}).join('')+'</div></div>'}).join('');
    var active=[];f.racks.forEach(function(r){r.nodes.forEach(function(n){active=active.concat(n.reboots)})});
    active.sort(function(a,b){return a.notifiedAt<b.notifiedAt?-1:1});
    $('inflight').innerHTML=active.length?'<table><thead><tr><th>Reboot</th><th>Node</th><th>Status</th><th>Deadline</th><th>Since</th></tr></thead><tbody>'+active.map(function(r){
      return '<tr data-reboot="'+esc(r.id)+'"><td class="mono">'+esc(r.id)+'</td><td>'+esc(r.node)+(r.xpu?'/'+esc(r.xpu):' (host)')+(r.rolloutId?' <span class="chip">rollout</span>':'')+'</td><td>'+badge(r.status)+(r.forced?' <span class="chip">forced</span>':'')+'</td><td>'+esc(until(r.deadline))+'</td><td>'+esc(ago(r.notifiedAt))+'</td></tr>'}).join('')+'</tbody></table>'
      :'<div class="empty">No reboot in flight.</div>';
    $('budgets').innerHTML=f.budgets.length?'<table><thead><tr><th>Budget</th><th>Use</th><th></th></tr></thead><tbody>'+f.budgets.map(function(b){var pct=Math.min(100,100*b.unavailable/Math.max(b.maxUnavailable,1));
      var val=b.key.indexOf(b.per+':')===0?b.key.slice(b.per.length+1):b.key;
      return '<tr data-budget="'+esc(b.per+':'+val)+'"><td>'+esc(b.per)+' <b>'+esc(val)+'</b></td><td style="width:45%"><div class="bar"><i class="'+(b.unavailable>=b.maxUnavailable?'f':'p')+'" style="width:'+pct+'%"></i></div></td><td>'+b.unavailable+'/'+b.maxUnavailable+'</td></tr>'}).join('')+'</tbody></table>'
      :'<div class="empty">No disruption budgets configured.</div>';
    $('holds').innerHTML=f.holds.length?f.holds.map(function(h){return '<div class="ro" data-hold="'+esc(h.id)+'"><div class="top"><span><span class="badge paused">hold</span> <b>'+esc(Object.keys(h.selector).map(function(k){return k+'='+h.selector[k]}).join(', '))+'</b></span><span class="count">'+esc(h.until?'until '+new Date(h.until).toLocaleString():'until released')+'</span></div><div class="id">'+esc(h.id)+'</div>'+(h.reason?'<div class="why">'+esc(h.reason)+'</div>':'')+'</div>'}).join('')
      :'<div class="empty">No holds.</div>';
    $('rollouts').innerHTML=f.rollouts.length?f.rollouts.slice(0,6).map(function(r){var tot=Math.max(r.total,1);
      return '<div class="ro" data-rollout="'+esc(r.id)+'"><div class="top"><span>'+badge(r.status)+' <b>'+esc(r.reason)+'</b></span><span class="count">'+r.done+'/'+r.total+' done'+(r.failed?', '+r.failed+' failed':'')+(r.inFlight?', '+r.inFlight+' in flight':'')+'</span></div>'
        +'<div class="id" title="'+esc(r.id)+'">'+esc(r.id)+'</div>'
        +'<div class="bar"><i class="d" style="width:'+(100*r.done/tot)+'%"></i><i class="f" style="width:'+(100*r.failed/tot)+'%"></i><i class="p" style="width:'+(100*r.inFlight/tot)+'%"></i></div>'
        +'<div class="why">'+esc(Object.keys(r.selector).map(function(k){return k+' '+r.selector[k]}).join('')||'whole fleet')+(r.blocked?' · waiting: '+esc(r.blocked):'')+'</div></div>'}).join('')
      :'<div class="empty">No rollouts yet.</div>';
    timeline(f);
    $('updated').textContent='updated '+new Date().toLocaleTimeString();
    $('dot').className='dot';
  }
  var COLORS={queued:'#fcc419',notified:'#2f6fdb',preparing:'#2f6fdb',extended:'#2f6fdb',rebooting:'#f59f00',recovering:'#f59f00',completed:'#2f9e44',failed:'#e03131',denied:'#e03131',cancelled:'#868e96'};
  function timeline(f){
    var svg=$('timeline'), W=svg.clientWidth||900, rows={}, order=[], now=Date.now();
    f.timeline.forEach(function(r){var k=r.node+(r.xpu?'/'+r.xpu:' host');if(!rows[k]){rows[k]=[];order.push(k)}rows[k].push(r)});
    order.sort();
    // From a little before the first reboot shown (at most 24 hours back) to the last deadline still ahead (the
    // xPU watchdog's forced reboot), drawn lighter: what has happened, and when the notice runs out.
    var NOTICE={queued:1,notified:1,preparing:1,extended:1};
    var first=now,end=now+5*60e3;f.timeline.forEach(function(r){first=Math.min(first,Date.parse(r.notifiedAt));
      if(!r.endedAt&&NOTICE[r.status]&&r.deadline)end=Math.max(end,Date.parse(r.deadline))});
    end=Math.min(end,now+2*3600e3);
    var start=Math.max(Math.min(now-10*60e3,first-(end-first)*0.1),now-24*3600e3);
    var L=130,R=16,T=22,RH=22,H=T+Math.max(order.length,1)*RH+26, x=function(t){return L+(W-L-R)*(t-start)/Math.max(end-start,1)};
    svg.setAttribute('viewBox','0 0 '+W+' '+H);svg.setAttribute('height',H);
    var out=[], span=end-start, step=[1,2,5,10,15,30,60,120,240,360].map(function(m){return m*60e3}).find(function(s){return span/s<=8})||720*60e3;
    for(var g=Math.ceil(start/step)*step; g<=end; g+=step){var gx=x(g);out.push('<line x1="'+gx+'" x2="'+gx+'" y1="'+(T-6)+'" y2="'+(H-22)+'" stroke="#eef1f6"/><text x="'+gx+'" y="'+(H-8)+'" font-size="10" fill="#6b7686" text-anchor="middle">'+new Date(g).toTimeString().slice(0,5)+'</text>')}
    out.push('<line x1="'+x(now)+'" x2="'+x(now)+'" y1="'+(T-8)+'" y2="'+(H-22)+'" stroke="#101828" stroke-dasharray="3 3"/><text x="'+x(now)+'" y="'+(T-10)+'" font-size="10" fill="#101828" text-anchor="end">now</text>');
    if(!order.length)out.push('<text x="'+L+'" y="'+(T+14)+'" font-size="12" fill="#6b7686">No reboot in the last 24 hours.</text>');
    order.forEach(function(k,i){var y=T+i*RH;
      out.push('<text x="'+(L-8)+'" y="'+(y+14)+'" font-size="11" fill="#1c2430" text-anchor="end">'+esc(k)+'</text>');
      rows[k].forEach(function(r){var a=x(Math.max(Date.parse(r.notifiedAt),start)),b=x(r.endedAt?Date.parse(r.endedAt):now);
        var c=COLORS[r.status]||'#868e96';
        if(!r.endedAt&&NOTICE[r.status]&&r.deadline){var d=x(Math.min(Date.parse(r.deadline),end));
          if(d>b)out.push('<rect class="ahead" x="'+b+'" y="'+(y+4)+'" width="'+(d-b)+'" height="'+(RH-8)+'" rx="3" fill="'+c+'" fill-opacity=".18" stroke="'+c+'" stroke-dasharray="3 2"><title>'+esc(r.id+': deadline '+r.deadline)+'</title></rect>')}
        out.push('<rect class="span" data-reboot="'+esc(r.id)+'" x="'+a+'" y="'+(y+4)+'" width="'+Math.max(b-a,3)+'" height="'+(RH-8)+'" rx="3" fill="'+c+'"><title>'+esc(r.id+' '+r.status)+'</title></rect>')})});
    svg.innerHTML=out.join('');
  }
  function tick(){
    if(!token())return showLogin();
    api('v1/fleet').then(function(f){$('login').hidden=true;$('app').hidden=false;render(f)}).catch(function(e){
      if(e.auth){sessionStorage.removeItem(KEY);stop();return showLogin(e.message)}
      $('dot').className='dot stale';$('updated').textContent='cannot reach the API: '+e.message});
  }
  function stop(){if(timer)clearInterval(timer);timer=null}
  function go(){stop();tick();timer=setInterval(tick,POLL_MS)}
  $('loginForm').addEventListener('submit',function(ev){ev.preventDefault();var v=$('tok').value.trim();if(!v)return;sessionStorage.setItem(KEY,v);$('tok').value='';go()});
  $('logout').addEventListener('click',function(){sessionStorage.removeItem(KEY);stop();$('app').hidden=true;showLogin()});
  window.addEventListener('resize',function(){if(last)timeline(last)});
  if(token())go();else showLogin();
})();
`;

export const FLEET_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Fleet · xPU reboot coordinator</title><style>${STYLE}</style></head>
<body>
<header><h1>xPU reboot coordinator</h1><span class="sub">fleet, live</span><span class="spacer"></span>
<span class="live"><span id="dot" class="dot"></span><span id="updated">connecting…</span></span><button id="logout" type="button">Sign out</button></header>
<div id="app" hidden>
<main>
<div class="span12 cards" id="cards"></div>
<section class="span8"><h2>Nodes by rack</h2><div class="racks" id="racks"></div>
<div class="legend"><span style="--c:#e9eef5">idle</span><span style="--c:#f59f00">xPU rebooting</span><span style="--c:#d9480f">host rebooting</span><span style="--c:#fcc419">queued</span><span style="--c:#7048e8">held (dashed)</span></div></section>
<section class="span4"><h2>Rollouts</h2><div id="rollouts"></div></section>
<section class="span8"><h2>Reboots in flight</h2><div id="inflight"></div></section>
<section class="span4"><h2>Budgets</h2><div id="budgets"></div><h2 style="margin-top:14px">Holds</h2><div id="holds"></div></section>
<section class="span12"><h2>Timeline</h2><svg id="timeline" width="100%" height="60" role="img" aria-label="reboots over time"></svg>
<div class="legend"><span style="--c:#2f6fdb">notice</span><span style="--c:rgba(47,111,219,.25)">notice left (to the deadline)</span><span style="--c:#fcc419">queued</span><span style="--c:#f59f00">rebooting / recovering</span><span style="--c:#2f9e44">completed</span><span style="--c:#e03131">failed</span><span style="--c:#868e96">cancelled</span></div></section>
</main></div>
<div id="login" hidden><form id="loginForm"><h2>Operator sign-in</h2><p>Paste the operator token. It stays in this tab (sessionStorage) and is sent only to this API.</p>
<input id="tok" type="password" autocomplete="off" placeholder="operator token" aria-label="operator token"><button type="submit">Connect</button><div class="err" id="loginErr"></div></form></div>
<script>${SCRIPT}</script>
</body></html>`;
