/* Unit tests for server/pattern.c: table-driven match cases for every
 * operator, invalid patterns with their error text, explain() messages and
 * the limits.
 *
 * Patterns and events in the tables are written with single quotes, which
 * json_of() turns into double quotes, so that the tables stay readable. No
 * case needs a literal single quote.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pattern.h"

/* Returns a malloc'd copy of s with every ' replaced by ". */
static char *json_of(const char *s)
{
    char *out = strdup(s);

    assert_non_null(out);
    for (char *p = out; *p != '\0'; p++)
        if (*p == '\'')
            *p = '"';
    return out;
}

static json_t *event_of(const char *s)
{
    char *text = json_of(s);
    json_error_t jerr;
    json_t *ev = json_loads(text, JSON_DECODE_ANY, &jerr);

    if (ev == NULL)
        print_error("bad test event %s: %s\n", s, jerr.text);
    assert_non_null(ev);
    free(text);
    return ev;
}

static eb_status compile_q(const char *pattern, eb_pattern **out, char *err, size_t errlen)
{
    char *text = json_of(pattern);
    eb_status st = eb_pattern_compile(text, strlen(text), out, err, errlen);

    free(text);
    return st;
}

struct match_case {
    const char *pattern;
    const char *event;
    bool want;
};

static const struct match_case match_cases[] = {
    /* Exact strings. */
    { "{'source':['a']}", "{'source':'a'}", true },
    { "{'source':['a']}", "{'source':'b'}", false },
    { "{'source':['a','b']}", "{'source':'b'}", true },
    { "{'source':['a']}", "{}", false },
    { "{'source':['A']}", "{'source':'a'}", false },
    { "{'source':['a']}", "{'source':'ab'}", false },
    { "{'source':['a']}", "{'source':['x','a']}", true },
    { "{'source':['a']}", "{'source':['x','y']}", false },
    { "{'source':['a']}", "{'source':[]}", false },
    { "{'source':['a']}", "{'source':{'a':1}}", false },
    { "{'source':['5']}", "{'source':5}", false },
    { "{'source':['true']}", "{'source':true}", false },
    { "{'source':['null']}", "{'source':null}", false },
    /* Empty string. */
    { "{'source':['']}", "{'source':''}", true },
    { "{'source':['']}", "{'source':'a'}", false },
    { "{'source':['a']}", "{'source':''}", false },
    { "{'source':['']}", "{}", false },
    { "{'source':['']}", "{'source':null}", false },
    { "{'source':['']}", "{'source':[]}", false },
    /* Numbers, compared by value. */
    { "{'n':[5]}", "{'n':5}", true },
    { "{'n':[5]}", "{'n':5.0}", true },
    { "{'n':[5.0]}", "{'n':5}", true },
    { "{'n':[5]}", "{'n':'5'}", false },
    { "{'n':[5]}", "{'n':6}", false },
    { "{'n':[0]}", "{'n':-0.0}", true },
    { "{'n':[1e3]}", "{'n':1000}", true },
    { "{'n':[0.1]}", "{'n':0.1}", true },
    { "{'n':[5]}", "{'n':[1,5]}", true },
    { "{'n':[-3]}", "{'n':-3}", true },
    { "{'n':[-3]}", "{'n':3}", false },
    { "{'n':[1]}", "{'n':true}", false },
    { "{'n':[0]}", "{'n':false}", false },
    { "{'n':[0]}", "{'n':null}", false },
    /* Booleans and null. */
    { "{'b':[true]}", "{'b':true}", true },
    { "{'b':[true]}", "{'b':false}", false },
    { "{'b':[false]}", "{'b':false}", true },
    { "{'b':[true]}", "{'b':'true'}", false },
    { "{'b':[true]}", "{'b':1}", false },
    { "{'b':[true,false]}", "{'b':false}", true },
    { "{'x':[null]}", "{'x':null}", true },
    { "{'x':[null]}", "{}", false },
    { "{'x':[null]}", "{'x':''}", false },
    { "{'x':[null]}", "{'x':0}", false },
    { "{'x':[null]}", "{'x':false}", false },
    { "{'x':[null]}", "{'x':[null]}", true },
    { "{'x':[null,'a']}", "{'x':'a'}", true },
    /* AND across fields; nested objects. */
    { "{'source':['a'],'type':['t']}", "{'source':'a','type':'t'}", true },
    { "{'source':['a'],'type':['t']}", "{'source':'a','type':'u'}", false },
    { "{'source':['a'],'type':['t']}", "{'source':'a'}", false },
    { "{'data':{'x':[1]}}", "{'data':{'x':1}}", true },
    { "{'data':{'x':[1]}}", "{'data':{'x':2}}", false },
    { "{'data':{'x':[1]}}", "{'data':'str'}", false },
    { "{'data':{'x':[1]}}", "{}", false },
    { "{'data':{'x':[1]}}", "{'data':{'x':1,'y':2}}", true },
    { "{'data':{'a':{'b':{'c':['d']}}}}", "{'data':{'a':{'b':{'c':'d'}}}}", true },
    { "{'data':{'a':{'b':{'c':['d']}}}}", "{'data':{'a':{'b':{'c':'e'}}}}", false },
    { "{'data':{'a':{'b':{'c':['d']}}}}", "{'data':{'a':{'c':'d'}}}", false },
    { "{}", "{'anything':1}", true },
    { "{}", "{}", true },
    { "{'a.b':['x']}", "{'a':{'b':'x'}}", false },
    { "{'a.b':['x']}", "{'a.b':'x'}", true },
    { "{'x':['a']}", "null", false },
    { "{}", "[1]", true },
    /* Arrays in the event. */
    { "{'data':{'x':[1]}}", "{'data':[{'x':2},{'x':1}]}", true },
    { "{'data':{'x':[1],'y':[2]}}", "{'data':[{'x':1,'y':3},{'x':3,'y':2}]}", false },
    { "{'data':{'x':[1],'y':[2]}}", "{'data':[{'x':1,'y':3},{'x':1,'y':2}]}", true },
    { "{'data':{'x':[1]}}", "{'data':[1,2]}", false },
    { "{'data':{'x':[1]}}", "{'data':[]}", false },
    { "{'x':['a']}", "{'x':[['b'],['a']]}", true },
    { "{'x':['a']}", "{'x':[{'a':'a'}]}", false },
    { "{'x':['a','b']}", "{'x':['c','b']}", true },
    /* A CloudEvents-shaped event. */
    { "{'specversion':['1.0'],'type':['com.example.order.created'],'data':{'total':[{'numeric':"
      "['>',100]}]}}",
      "{'specversion':'1.0','id':'1','source':'/shop','type':'com.example.order.created',"
      "'tenantclass':'gold','data':{'total':142.5,'items':[{'sku':'x'}]}}",
      true },
    { "{'tenantclass':['gold','platinum']}",
      "{'specversion':'1.0','id':'1','source':'/s','type':'t','tenantclass':'gold'}", true },
    { "{'subject':[{'exists':false}]}", "{'specversion':'1.0','id':'1','source':'/s','type':'t'}",
      true },
    /* prefix */
    { "{'type':[{'prefix':'com.'}]}", "{'type':'com.x'}", true },
    { "{'type':[{'prefix':'com.'}]}", "{'type':'org.x'}", false },
    { "{'type':[{'prefix':'com.'}]}", "{'type':'com.'}", true },
    { "{'type':[{'prefix':'com.'}]}", "{'type':'com'}", false },
    { "{'type':[{'prefix':'com.'}]}", "{'type':'COM.x'}", false },
    { "{'type':[{'prefix':'com.'}]}", "{}", false },
    { "{'type':[{'prefix':''}]}", "{'type':'x'}", true },
    { "{'type':[{'prefix':''}]}", "{'type':''}", true },
    { "{'type':[{'prefix':''}]}", "{'type':5}", false },
    { "{'type':[{'prefix':'5'}]}", "{'type':55}", false },
    { "{'type':[{'prefix':'com.'}]}", "{'type':['org.a','com.b']}", true },
    { "{'type':[{'prefix':{'equals-ignore-case':'COM.'}}]}", "{'type':'com.x'}", true },
    { "{'type':[{'prefix':{'equals-ignore-case':'COM.'}}]}", "{'type':'CoM.y'}", true },
    { "{'type':[{'prefix':{'equals-ignore-case':'COM.'}}]}", "{'type':'org.x'}", false },
    { "{'type':[{'prefix':{'equals-ignore-case':'COM.'}}]}", "{'type':'co'}", false },
    /* suffix */
    { "{'s':[{'suffix':'.png'}]}", "{'s':'a.png'}", true },
    { "{'s':[{'suffix':'.png'}]}", "{'s':'a.PNG'}", false },
    { "{'s':[{'suffix':'.png'}]}", "{'s':'png'}", false },
    { "{'s':[{'suffix':'.png'}]}", "{'s':'.png'}", true },
    { "{'s':[{'suffix':'.png'}]}", "{'s':'a.png.gz'}", false },
    { "{'s':[{'suffix':{'equals-ignore-case':'.PNG'}}]}", "{'s':'a.png'}", true },
    { "{'s':[{'suffix':{'equals-ignore-case':'.PNG'}}]}", "{'s':'a.jpg'}", false },
    { "{'s':[{'suffix':{'equals-ignore-case':'.PNG'}}]}", "{'s':'NG'}", false },
    /* equals-ignore-case */
    { "{'s':[{'equals-ignore-case':'Alice'}]}", "{'s':'aLiCe'}", true },
    { "{'s':[{'equals-ignore-case':'Alice'}]}", "{'s':'alicex'}", false },
    { "{'s':[{'equals-ignore-case':'Alice'}]}", "{'s':'alic'}", false },
    { "{'s':[{'equals-ignore-case':''}]}", "{'s':''}", true },
    { "{'s':[{'equals-ignore-case':'\xc3\x89'}]}", "{'s':'\xc3\xa9'}", false },
    { "{'s':[{'equals-ignore-case':'\xc3\xa9'}]}", "{'s':'\xc3\xa9'}", true },
    { "{'s':[{'equals-ignore-case':'a'}]}", "{'s':['b','A']}", true },
    { "{'s':[{'equals-ignore-case':'1'}]}", "{'s':1}", false },
    /* anything-but */
    { "{'s':[{'anything-but':'a'}]}", "{'s':'b'}", true },
    { "{'s':[{'anything-but':'a'}]}", "{'s':'a'}", false },
    { "{'s':[{'anything-but':'a'}]}", "{}", false },
    { "{'s':[{'anything-but':'a'}]}", "{'s':5}", true },
    { "{'s':[{'anything-but':'a'}]}", "{'s':null}", true },
    { "{'s':[{'anything-but':'a'}]}", "{'s':'A'}", true },
    { "{'s':[{'anything-but':['a','b']}]}", "{'s':'c'}", true },
    { "{'s':[{'anything-but':['a','b']}]}", "{'s':'b'}", false },
    { "{'n':[{'anything-but':5}]}", "{'n':5.0}", false },
    { "{'n':[{'anything-but':5}]}", "{'n':6}", true },
    { "{'n':[{'anything-but':5}]}", "{'n':'5'}", true },
    { "{'n':[{'anything-but':[1,2,3]}]}", "{'n':2}", false },
    { "{'n':[{'anything-but':[1,2,3]}]}", "{'n':4}", true },
    { "{'n':[{'anything-but':['a',1]}]}", "{'n':1}", false },
    { "{'s':[{'anything-but':{'prefix':'init'}}]}", "{'s':'initializing'}", false },
    { "{'s':[{'anything-but':{'prefix':'init'}}]}", "{'s':'running'}", true },
    { "{'s':[{'anything-but':{'prefix':'init'}}]}", "{'s':42}", true },
    { "{'s':[{'anything-but':{'prefix':['a','b']}}]}", "{'s':'bx'}", false },
    { "{'s':[{'anything-but':{'prefix':['a','b']}}]}", "{'s':'cx'}", true },
    { "{'s':[{'anything-but':{'suffix':'.tmp'}}]}", "{'s':'a.tmp'}", false },
    { "{'s':[{'anything-but':{'suffix':'.tmp'}}]}", "{'s':'a.txt'}", true },
    { "{'s':[{'anything-but':{'equals-ignore-case':'Foo'}}]}", "{'s':'FOO'}", false },
    { "{'s':[{'anything-but':{'equals-ignore-case':'Foo'}}]}", "{'s':'bar'}", true },
    { "{'s':[{'anything-but':{'equals-ignore-case':['a','B']}}]}", "{'s':'b'}", false },
    { "{'s':[{'anything-but':{'equals-ignore-case':['a','B']}}]}", "{'s':'c'}", true },
    { "{'s':[{'anything-but':{'wildcard':'a*'}}]}", "{'s':'abc'}", false },
    { "{'s':[{'anything-but':{'wildcard':'a*'}}]}", "{'s':'bc'}", true },
    { "{'s':[{'anything-but':'a'}]}", "{'s':['a','b']}", true },
    { "{'s':[{'anything-but':'a'}]}", "{'s':['a']}", false },
    { "{'s':[{'anything-but':'a'}]}", "{'s':{'x':1}}", false },
    { "{'s':[{'anything-but':'a'}]}", "{'s':[]}", false },
    { "{'s':[{'anything-but':''}]}", "{'s':''}", false },
    { "{'s':[{'anything-but':''}]}", "{'s':'x'}", true },
    { "{'s':[{'anything-but':null}]}", "{'s':null}", false },
    /* numeric */
    { "{'n':[{'numeric':['>',0]}]}", "{'n':1}", true },
    { "{'n':[{'numeric':['>',0]}]}", "{'n':0}", false },
    { "{'n':[{'numeric':['>',0]}]}", "{'n':-1}", false },
    { "{'n':[{'numeric':['>',0]}]}", "{'n':'1'}", false },
    { "{'n':[{'numeric':['>',0]}]}", "{}", false },
    { "{'n':[{'numeric':['>',0]}]}", "{'n':null}", false },
    { "{'n':[{'numeric':['>=',0]}]}", "{'n':0}", true },
    { "{'n':[{'numeric':['<',10]}]}", "{'n':9.99}", true },
    { "{'n':[{'numeric':['<',10]}]}", "{'n':10}", false },
    { "{'n':[{'numeric':['<=',10]}]}", "{'n':10}", true },
    { "{'n':[{'numeric':['=',5]}]}", "{'n':5.0}", true },
    { "{'n':[{'numeric':['=',5]}]}", "{'n':5.1}", false },
    { "{'n':[{'numeric':['>',0,'<=',100]}]}", "{'n':100}", true },
    { "{'n':[{'numeric':['>',0,'<=',100]}]}", "{'n':0}", false },
    { "{'n':[{'numeric':['>',0,'<=',100]}]}", "{'n':50.5}", true },
    { "{'n':[{'numeric':['>',0,'<=',100]}]}", "{'n':100.01}", false },
    { "{'n':[{'numeric':['<=',100,'>',0]}]}", "{'n':1}", true },
    { "{'n':[{'numeric':['>=',-1.5,'<',-1]}]}", "{'n':-1.5}", true },
    { "{'n':[{'numeric':['>=',-1.5,'<',-1]}]}", "{'n':-1}", false },
    { "{'n':[{'numeric':['>',1000]}]}", "{'n':[5,2000]}", true },
    { "{'n':[{'numeric':['>',1000]}]}", "{'n':[5,20]}", false },
    { "{'n':[{'numeric':['>',1000]}]}", "{'n':true}", false },
    { "{'n':[{'numeric':['>',1e9]}]}", "{'n':9007199254740993}", true },
    { "{'n':[{'numeric':['>=',5,'<=',5]}]}", "{'n':5}", true },
    { "{'n':[{'numeric':['<',0]},{'numeric':['>',100]}]}", "{'n':150}", true },
    { "{'n':[{'numeric':['<',0]},{'numeric':['>',100]}]}", "{'n':50}", false },
    /* exists: objects and empty arrays are not leaves. */
    { "{'x':[{'exists':true}]}", "{'x':1}", true },
    { "{'x':[{'exists':true}]}", "{}", false },
    { "{'x':[{'exists':true}]}", "{'x':null}", true },
    { "{'x':[{'exists':true}]}", "{'x':''}", true },
    { "{'x':[{'exists':true}]}", "{'x':{'a':1}}", false },
    { "{'x':[{'exists':true}]}", "{'x':[]}", false },
    { "{'x':[{'exists':true}]}", "{'x':[1]}", true },
    { "{'x':[{'exists':true}]}", "{'x':[{'a':1}]}", false },
    { "{'x':[{'exists':false}]}", "{}", true },
    { "{'x':[{'exists':false}]}", "{'x':1}", false },
    { "{'x':[{'exists':false}]}", "{'x':null}", false },
    { "{'x':[{'exists':false}]}", "{'x':{'a':1}}", true },
    { "{'x':[{'exists':false}]}", "{'x':[]}", true },
    { "{'data':{'x':[{'exists':false}]}}", "{}", true },
    { "{'data':{'x':[{'exists':false}]}}", "{'data':{'y':1}}", true },
    { "{'data':{'x':[{'exists':false}]}}", "{'data':{'x':0}}", false },
    { "{'data':{'x':[{'exists':true}]}}", "{'data':'x'}", false },
    { "{'data':{'x':[{'exists':true}]}}", "{'data':{'x':'y'}}", true },
    { "{'x':[{'exists':false},'a']}", "{'x':'a'}", true },
    { "{'x':[{'exists':false},'a']}", "{}", true },
    { "{'x':[{'exists':false},'a']}", "{'x':'b'}", false },
    /* wildcard */
    { "{'s':[{'wildcard':'a*b'}]}", "{'s':'ab'}", true },
    { "{'s':[{'wildcard':'a*b'}]}", "{'s':'axxb'}", true },
    { "{'s':[{'wildcard':'a*b'}]}", "{'s':'axxbc'}", false },
    { "{'s':[{'wildcard':'a*b'}]}", "{'s':'ba'}", false },
    { "{'s':[{'wildcard':'a*b'}]}", "{'s':'a'}", false },
    { "{'s':[{'wildcard':'*'}]}", "{'s':''}", true },
    { "{'s':[{'wildcard':'*'}]}", "{'s':'anything'}", true },
    { "{'s':[{'wildcard':'*'}]}", "{'s':5}", false },
    { "{'s':[{'wildcard':'*'}]}", "{}", false },
    { "{'s':[{'wildcard':'abc'}]}", "{'s':'abc'}", true },
    { "{'s':[{'wildcard':'abc'}]}", "{'s':'abcd'}", false },
    { "{'s':[{'wildcard':''}]}", "{'s':''}", true },
    { "{'s':[{'wildcard':''}]}", "{'s':'a'}", false },
    { "{'s':[{'wildcard':'*.png'}]}", "{'s':'x.png'}", true },
    { "{'s':[{'wildcard':'*.png'}]}", "{'s':'x.png.bak'}", false },
    { "{'s':[{'wildcard':'img/*'}]}", "{'s':'img/'}", true },
    { "{'s':[{'wildcard':'a*b*c'}]}", "{'s':'abc'}", true },
    { "{'s':[{'wildcard':'a*b*c'}]}", "{'s':'acb'}", false },
    { "{'s':[{'wildcard':'a*aa'}]}", "{'s':'aa'}", false },
    { "{'s':[{'wildcard':'a*aa'}]}", "{'s':'aaa'}", true },
    { "{'s':[{'wildcard':'*ab*ab*'}]}", "{'s':'xabyab'}", true },
    { "{'s':[{'wildcard':'*ab*ab*'}]}", "{'s':'xaby'}", false },
    { "{'s':[{'wildcard':'*ab*ab*'}]}", "{'s':'aab'}", false },
    { "{'s':[{'wildcard':'*ab*ab*'}]}", "{'s':'abab'}", true },
    { "{'s':[{'wildcard':'*/*/*'}]}", "{'s':'a/b/c'}", true },
    { "{'s':[{'wildcard':'*/*/*'}]}", "{'s':'a/b'}", false },
    { "{'s':[{'wildcard':'A*'}]}", "{'s':'abc'}", false },
    { "{'s':[{'wildcard':'a\\\\*b'}]}", "{'s':'a*b'}", true },
    { "{'s':[{'wildcard':'a\\\\*b'}]}", "{'s':'axb'}", false },
    { "{'s':[{'wildcard':'a\\\\\\\\*'}]}", "{'s':'a\\\\xyz'}", true },
    { "{'s':[{'wildcard':'a\\\\\\\\*'}]}", "{'s':'axyz'}", false },
    { "{'s':[{'wildcard':'\\\\**'}]}", "{'s':'*x'}", true },
    { "{'s':[{'wildcard':'x*'}]}", "{'s':['y','xz']}", true },
    /* cidr */
    { "{'ip':[{'cidr':'10.0.0.0/24'}]}", "{'ip':'10.0.0.7'}", true },
    { "{'ip':[{'cidr':'10.0.0.0/24'}]}", "{'ip':'10.0.1.7'}", false },
    { "{'ip':[{'cidr':'10.0.0.0/24'}]}", "{'ip':'10.0.0.255'}", true },
    { "{'ip':[{'cidr':'10.0.0.0/24'}]}", "{'ip':'not an ip'}", false },
    { "{'ip':[{'cidr':'10.0.0.0/24'}]}", "{'ip':'::1'}", false },
    { "{'ip':[{'cidr':'10.0.0.0/24'}]}", "{'ip':167772167}", false },
    { "{'ip':[{'cidr':'10.0.0.0/24'}]}", "{'ip':'10.0.0.7 '}", false },
    { "{'ip':[{'cidr':'10.0.0.0/24'}]}", "{'ip':''}", false },
    { "{'ip':[{'cidr':'10.0.0.0/24'}]}", "{'ip':['1.1.1.1','10.0.0.9']}", true },
    { "{'ip':[{'cidr':'10.0.0.5/8'}]}", "{'ip':'10.200.1.1'}", true },
    { "{'ip':[{'cidr':'0.0.0.0/0'}]}", "{'ip':'8.8.8.8'}", true },
    { "{'ip':[{'cidr':'192.168.1.128/25'}]}", "{'ip':'192.168.1.127'}", false },
    { "{'ip':[{'cidr':'192.168.1.128/25'}]}", "{'ip':'192.168.1.200'}", true },
    { "{'ip':[{'cidr':'10.0.0.1/32'}]}", "{'ip':'10.0.0.1'}", true },
    { "{'ip':[{'cidr':'10.0.0.1/32'}]}", "{'ip':'10.0.0.2'}", false },
    { "{'ip':[{'cidr':'2001:db8::/32'}]}", "{'ip':'2001:db8::1'}", true },
    { "{'ip':[{'cidr':'2001:db8::/32'}]}", "{'ip':'2001:DB8:ffff::1'}", true },
    { "{'ip':[{'cidr':'2001:db8::/32'}]}", "{'ip':'2001:db9::1'}", false },
    { "{'ip':[{'cidr':'2001:db8::/32'}]}", "{'ip':'10.0.0.1'}", false },
    { "{'ip':[{'cidr':'2001:db8::/33'}]}", "{'ip':'2001:db8:8000::1'}", false },
    { "{'ip':[{'cidr':'2001:db8::/33'}]}", "{'ip':'2001:db8:7fff::1'}", true },
    { "{'ip':[{'cidr':'::1/128'}]}", "{'ip':'::1'}", true },
    { "{'ip':[{'cidr':'::1/128'}]}", "{'ip':'::2'}", false },
    { "{'ip':[{'cidr':'::/0'}]}", "{'ip':'fe80::1'}", true },
    { "{'ip':[{'cidr':'10.0.0.0/8'}]}", "{'ip':'::ffff:10.0.0.1'}", false },
    /* $or */
    { "{'$or':[{'source':['a']},{'type':['t']}]}", "{'source':'a'}", true },
    { "{'$or':[{'source':['a']},{'type':['t']}]}", "{'type':'t'}", true },
    { "{'$or':[{'source':['a']},{'type':['t']}]}", "{'source':'b','type':'u'}", false },
    { "{'source':['a'],'$or':[{'type':['t']},{'subject':['s']}]}", "{'source':'a','subject':'s'}",
      true },
    { "{'source':['a'],'$or':[{'type':['t']},{'subject':['s']}]}", "{'source':'b','subject':'s'}",
      false },
    { "{'data':{'$or':[{'x':[1]},{'y':[2]}]}}", "{'data':{'y':2}}", true },
    { "{'data':{'$or':[{'x':[1]},{'y':[2]}]}}", "{'data':{'x':2}}", false },
    { "{'$or':[{'$or':[{'a':['1']},{'b':['2']}]},{'c':['3']}]}", "{'b':'2'}", true },
    { "{'$or':[{'$or':[{'a':['1']},{'b':['2']}]},{'c':['3']}]}", "{'d':'4'}", false },
    { "{'$or':[{'a':[{'exists':false}]},{'a':['x']}]}", "{}", true },
    { "{'$or':[{'a':[{'exists':false}]},{'a':['x']}]}", "{'a':'y'}", false },
    { "{'$or':[{'n':[{'numeric':['<',0]}]},{'n':[{'numeric':['>',100]}]}]}", "{'n':50}", false },
    { "{'$or':[{'n':[{'numeric':['<',0]}]},{'n':[{'numeric':['>',100]}]}]}", "{'n':150}", true },
    { "{'$or':[{'a':['1'],'b':['2']},{'c':['3']}]}", "{'a':'1'}", false },
    { "{'$or':[{'a':['1'],'b':['2']},{'c':['3']}]}", "{'a':'1','b':'2'}", true },
    /* Several operators in one list. */
    { "{'s':['a',{'prefix':'b'}]}", "{'s':'bz'}", true },
    { "{'s':['a',{'prefix':'b'}]}", "{'s':'cz'}", false },
    { "{'s':[{'suffix':'z'},{'cidr':'10.0.0.0/8'},5]}", "{'s':5}", true },
    { "{'s':[{'suffix':'z'},{'cidr':'10.0.0.0/8'},5]}", "{'s':'10.1.1.1'}", true },
    { "{'s':[{'suffix':'z'},{'cidr':'10.0.0.0/8'},5]}", "{'s':'11.1.1.1'}", false },
};

static void test_match_table(void **state)
{
    int failures = 0;

    (void)state;
    for (size_t i = 0; i < sizeof match_cases / sizeof match_cases[0]; i++) {
        const struct match_case *mc = &match_cases[i];
        eb_pattern *p = NULL;
        char err[256];
        json_t *ev;
        bool got;

        if (compile_q(mc->pattern, &p, err, sizeof err) != EB_OK) {
            print_error("case %zu: %s does not compile: %s\n", i, mc->pattern, err);
            failures++;
            continue;
        }
        ev = event_of(mc->event);
        got = eb_pattern_match(p, ev);
        if (got != mc->want) {
            print_error("case %zu: %s on %s: got %d, want %d\n", i, mc->pattern, mc->event, got,
                        mc->want);
            failures++;
        }
        /* explain() must agree with match(), and give a reason exactly when
         * the event does not match. */
        {
            char reason[256];
            bool ex = eb_pattern_explain(p, ev, reason, sizeof reason);

            if (ex != got || (ex ? reason[0] != '\0' : reason[0] == '\0')) {
                print_error("case %zu: explain %d (%s) disagrees with match %d\n", i, ex, reason,
                            got);
                failures++;
            }
        }
        json_decref(ev);
        eb_pattern_free(p);
    }
    print_message("%zu match cases\n", sizeof match_cases / sizeof match_cases[0]);
    assert_int_equal(failures, 0);
}

struct invalid_case {
    const char *pattern;
    const char *want; /* substring of the error, path included */
};

static const struct invalid_case invalid_cases[] = {
    { "", "pattern: invalid JSON" },
    { "{", "pattern: invalid JSON" },
    { "{} x", "pattern: invalid JSON" },
    { "[]", "pattern: must be a JSON object" },
    { "'x'", "pattern: invalid JSON" },
    { "{'a':['x'],'a':['y']}", "duplicate" },
    { "{'source':'a'}", "source: match values must be an array" },
    { "{'source':5}", "source: match values must be an array" },
    { "{'source':null}", "source: match values must be an array" },
    { "{'source':[]}", "source: match values must not be an empty array" },
    { "{'source':[['a']]}", "source[0]: match values must not contain arrays" },
    { "{'data':{}}", "data: empty objects are not allowed below the root" },
    { "{'data':{'x':{'y':'z'}}}", "data.x.y: match values must be an array" },
    { "{'data':{'amount':[{'numeric':['>']}]}}",
      "data.amount[0]: numeric expects an operator then a number" },
    { "{'n':[{'numeric':[]}]}", "n[0]: numeric expects an operator then a number" },
    { "{'n':[{'numeric':['>','5']}]}", "n[0]: numeric expects an operator then a number" },
    { "{'n':[{'numeric':[5,'>']}]}", "n[0]: numeric expects an operator then a number" },
    { "{'n':[1,{'numeric':['=>',5]}]}", "n[1]: numeric has unknown operator \"=>\"" },
    { "{'n':[{'numeric':['>',1,'<',5,'>',0]}]}", "n[0]: numeric expects one or two comparisons" },
    { "{'n':[{'numeric':['>',1,'>',5]}]}", "n[0]: numeric with two comparisons needs a lower" },
    { "{'n':[{'numeric':['<',1,'<=',5]}]}", "n[0]: numeric with two comparisons needs a lower" },
    { "{'n':[{'numeric':['=',1,'<',5]}]}", "n[0]: numeric \"=\" cannot be combined" },
    { "{'n':[{'numeric':['>',5,'<',1]}]}", "n[0]: numeric range is empty" },
    { "{'n':[{'numeric':['>',5,'<=',5]}]}", "n[0]: numeric range is empty" },
    { "{'n':[{'numeric':5}]}", "n[0]: numeric expects an array" },
    { "{'n':[{'numeric':['>',1e999]}]}", "pattern: invalid JSON" },
    { "{'x':[{'prefix':5}]}", "x[0]: prefix expects a string" },
    { "{'x':[{'prefix':{'equals-ignore-case':5}}]}", "x[0]: prefix expects a string or" },
    { "{'x':[{'prefix':{'suffix':'a'}}]}", "x[0]: prefix expects a string or" },
    { "{'x':[{'suffix':['a']}]}", "x[0]: suffix expects a string or" },
    { "{'x':[{'equals-ignore-case':1}]}", "x[0]: equals-ignore-case expects a string" },
    { "{'x':[{'exists':'yes'}]}", "x[0]: exists expects true or false" },
    { "{'x':[{'exists':1}]}", "x[0]: exists expects true or false" },
    { "{'x':[{'foo':1}]}", "x[0]: unknown operator \"foo\"" },
    { "{'x':[{'Prefix':'a'}]}", "x[0]: unknown operator \"Prefix\"" },
    { "{'x':[{'prefix':'a','suffix':'b'}]}", "x[0]: an operator object must have exactly one" },
    { "{'x':[{}]}", "x[0]: an operator object must have exactly one member" },
    { "{'x':[{'anything-but':[]}]}", "x[0]: anything-but expects a non-empty list of values" },
    { "{'x':[{'anything-but':['a',['b']]}]}", "x[0]: anything-but list entry 1 must be" },
    { "{'x':[{'anything-but':['a',{'prefix':'b'}]}]}", "x[0]: anything-but list entry 1" },
    { "{'x':[{'anything-but':{'numeric':['>',1]}}]}",
      "x[0]: anything-but expects a value, a list" },
    { "{'x':[{'anything-but':{'prefix':5}}]}",
      "x[0]: anything-but prefix expects a string or a non-empty list of strings" },
    { "{'x':[{'anything-but':{'prefix':[]}}]}", "x[0]: anything-but prefix expects a string" },
    { "{'x':[{'anything-but':{'prefix':['a',5]}}]}",
      "x[0]: anything-but prefix list entry 1 must be a string" },
    { "{'x':[{'anything-but':{'prefix':'a','suffix':'b'}}]}", "x[0]: anything-but expects" },
    { "{'x':[{'anything-but':{'wildcard':'a**'}}]}",
      "x[0]: anything-but wildcard must not contain consecutive '*'" },
    { "{'x':[{'wildcard':5}]}", "x[0]: wildcard expects a string" },
    { "{'x':[{'wildcard':'a**b'}]}", "x[0]: wildcard must not contain consecutive '*'" },
    { "{'x':[{'wildcard':'**'}]}", "x[0]: wildcard must not contain consecutive '*'" },
    { "{'x':[{'wildcard':'a\\\\q'}]}", "x[0]: wildcard: a backslash may only escape" },
    { "{'x':[{'wildcard':'a\\\\'}]}", "x[0]: wildcard: a backslash may only escape" },
    { "{'x':[{'cidr':5}]}", "x[0]: cidr expects a string" },
    { "{'x':[{'cidr':'10.0.0.0'}]}", "x[0]: cidr expects \"address/prefix-length\"" },
    { "{'x':[{'cidr':'10.0.0/24'}]}", "x[0]: cidr has an invalid IPv4 address" },
    { "{'x':[{'cidr':'10.0.0.256/24'}]}", "x[0]: cidr has an invalid IPv4 address" },
    { "{'x':[{'cidr':'10.0.0.0/33'}]}", "x[0]: cidr prefix length must be 0 to 32" },
    { "{'x':[{'cidr':'::/129'}]}", "x[0]: cidr prefix length must be 0 to 128" },
    { "{'x':[{'cidr':'10.0.0.0/'}]}", "x[0]: cidr prefix length must be 0 to 32" },
    { "{'x':[{'cidr':'10.0.0.0/+1'}]}", "x[0]: cidr prefix length must be 0 to 32" },
    { "{'x':[{'cidr':'10.0.0.0/ 8'}]}", "x[0]: cidr prefix length must be 0 to 32" },
    { "{'x':[{'cidr':'10.0.0.0/0024'}]}", "x[0]: cidr prefix length must be 0 to 32" },
    { "{'x':[{'cidr':'fe80::1%eth0/64'}]}", "x[0]: cidr has an invalid IPv6 address" },
    { "{'x':[{'cidr':'2001:db8:::/64'}]}", "x[0]: cidr has an invalid IPv6 address" },
    { "{'$or':[]}", "$or: expects a non-empty array of objects" },
    { "{'$or':{'a':['x']}}", "$or: expects a non-empty array of objects" },
    { "{'$or':[{'a':['x']},5]}", "$or[1]: must be an object" },
    { "{'$or':[{}]}", "$or[0]: empty objects are not allowed below the root" },
    { "{'data':{'$or':[{'a':[1]},{'b':'x'}]}}", "data.$or[1].b: match values must be an array" },
    { "{'$or':[{'a':[{'numeric':['>']}]}]}", "$or[0].a[0]: numeric expects an operator" },
};

static void test_invalid_table(void **state)
{
    int failures = 0;

    (void)state;
    for (size_t i = 0; i < sizeof invalid_cases / sizeof invalid_cases[0]; i++) {
        const struct invalid_case *ic = &invalid_cases[i];
        eb_pattern *p = NULL;
        char err[256] = "untouched";
        eb_status st = compile_q(ic->pattern, &p, err, sizeof err);

        if (st != EB_EINVAL || p != NULL || strstr(err, ic->want) == NULL) {
            print_error("case %zu: %s: status %d, error \"%s\", want \"%s\"\n", i, ic->pattern,
                        st, err, ic->want);
            failures++;
        }
        eb_pattern_free(p);
    }
    print_message("%zu invalid cases\n", sizeof invalid_cases / sizeof invalid_cases[0]);
    assert_int_equal(failures, 0);
}

struct explain_case {
    const char *pattern;
    const char *event;
    const char *want; /* the whole reason; "" when the event matches */
};

static const struct explain_case explain_cases[] = {
    { "{'data':{'total':[{'numeric':['>',1000]}]}}", "{'data':{'total':742}}",
      "data.total: expected numeric > 1000, got 742" },
    { "{'type':['a']}", "{}", "type: field is absent" },
    { "{'type':['a']}", "{'type':'a'}", "" },
    { "{'type':['a','b']}", "{'type':'c'}", "type: expected \"a\" or \"b\", got \"c\"" },
    { "{'source':[{'prefix':'com.'}]}", "{'source':'org.x'}",
      "source: expected prefix \"com.\", got \"org.x\"" },
    { "{'n':[{'numeric':['>=',0.5,'<',2]}]}", "{'n':3}",
      "n: expected numeric >= 0.5 < 2, got 3" },
    { "{'n':[{'numeric':['=',5]}]}", "{'n':[1,2]}", "n: expected numeric = 5, got [1,2]" },
    { "{'n':[0.1]}", "{'n':0.2}", "n: expected 0.1, got 0.2" },
    { "{'x':[{'exists':false}]}", "{'x':1}", "x: expected exists false, got 1" },
    { "{'x':[{'exists':true}]}", "{'x':{'k':1}}", "x: expected exists true, got {\"k\":1}" },
    { "{'x':[{'anything-but':['a','b']}]}", "{'x':'a'}",
      "x: expected anything-but [\"a\", \"b\"], got \"a\"" },
    { "{'x':[{'anything-but':{'prefix':'a'}}]}", "{'x':'ab'}",
      "x: expected anything-but prefix \"a\", got \"ab\"" },
    { "{'x':[null,true]}", "{'x':false}", "x: expected null or true, got false" },
    { "{'ip':[{'cidr':'10.0.0.0/8'}]}", "{'ip':'11.0.0.1'}",
      "ip: expected cidr 10.0.0.0/8, got \"11.0.0.1\"" },
    { "{'s':[{'wildcard':'a*b'}]}", "{'s':'c'}", "s: expected wildcard \"a*b\", got \"c\"" },
    { "{'s':[{'suffix':{'equals-ignore-case':'.PNG'}}]}", "{'s':'a.gif'}",
      "s: expected suffix equals-ignore-case \".PNG\", got \"a.gif\"" },
    { "{'s':[{'equals-ignore-case':'Bob'}]}", "{'s':'al'}",
      "s: expected equals-ignore-case \"Bob\", got \"al\"" },
    { "{'data':{'a':{'b':['x']}}}", "{'data':{'a':{}}}", "data.a.b: field is absent" },
    { "{'data':{'a':{'b':['x']}}}", "{}", "data.a.b: field is absent" },
    { "{'items':{'p':[1]}}", "{'items':[{'p':2},{'p':3}]}", "items[0].p: expected 1, got 2" },
    { "{'source':['a'],'type':['t']}", "{'source':'a','type':'u'}",
      "type: expected \"t\", got \"u\"" },
    { "{'source':['a'],'type':['t']}", "{'source':'b'}", "source: expected \"a\", got \"b\"" },
    { "{'$or':[{'a':['1']},{'b':['2']}]}", "{}",
      "a: field is absent (first of 2 $or alternatives)" },
    { "{'$or':[{'a':['1']},{'b':['2']}],'c':['3']}", "{'b':'2'}", "c: field is absent" },
    { "{'s':['x']}", "{'s':'a\\nb\\\"c'}", "s: expected \"x\", got \"a\\u000ab\\\"c\"" },
};

static void test_explain_table(void **state)
{
    int failures = 0;

    (void)state;
    for (size_t i = 0; i < sizeof explain_cases / sizeof explain_cases[0]; i++) {
        const struct explain_case *ec = &explain_cases[i];
        eb_pattern *p = NULL;
        char err[256], reason[256];
        json_t *ev;
        bool ok;

        assert_int_equal(compile_q(ec->pattern, &p, err, sizeof err), EB_OK);
        ev = event_of(ec->event);
        ok = eb_pattern_explain(p, ev, reason, sizeof reason);
        if (ok != (ec->want[0] == '\0') || strcmp(reason, ec->want) != 0) {
            print_error("case %zu: %s on %s: got \"%s\", want \"%s\"\n", i, ec->pattern,
                        ec->event, reason, ec->want);
            failures++;
        }
        json_decref(ev);
        eb_pattern_free(p);
    }
    print_message("%zu explain cases\n", sizeof explain_cases / sizeof explain_cases[0]);
    assert_int_equal(failures, 0);
}

static void test_explain_truncates(void **state)
{
    eb_pattern *p = NULL;
    char reason[12];
    char big[300];
    json_t *ev;

    (void)state;
    assert_int_equal(compile_q("{'s':['x']}", &p, NULL, 0), EB_OK);

    /* A long value is cut, with an ellipsis, well before the buffer ends. */
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ev = json_pack("{s:s}", "s", big);
    {
        char wide[512];

        assert_false(eb_pattern_explain(p, ev, wide, sizeof wide));
        assert_non_null(strstr(wide, "...\""));
        assert_true(strlen(wide) < 120);
    }
    /* A small buffer is filled and terminated. */
    assert_false(eb_pattern_explain(p, ev, reason, sizeof reason));
    assert_int_equal(strlen(reason), sizeof reason - 1);
    assert_memory_equal(reason, "s: expected", sizeof reason - 1);
    /* No buffer at all still answers. */
    assert_false(eb_pattern_explain(p, ev, NULL, 0));
    assert_false(eb_pattern_explain(p, ev, reason, 0));
    json_decref(ev);
    eb_pattern_free(p);
}

/* Returns a malloc'd pattern nesting depth objects: {"a":{"a":...{"x":["v"]}}}. */
static char *nested_pattern(int depth, const char *key)
{
    size_t cap = (size_t)depth * 16 + 64, len = 0;
    char *s = malloc(cap);

    assert_non_null(s);
    for (int i = 1; i < depth; i++)
        len += (size_t)snprintf(s + len, cap - len, "{\"%s\":", key);
    len += (size_t)snprintf(s + len, cap - len, "{\"x\":[\"v\"]}");
    for (int i = 1; i < depth; i++)
        s[len++] = '}';
    s[len] = '\0';
    return s;
}

static void test_cap_depth(void **state)
{
    eb_pattern *p = NULL;
    char err[256];
    char *text;

    (void)state;
    text = nested_pattern(EB_PATTERN_MAX_DEPTH, "a");
    assert_int_equal(eb_pattern_compile(text, strlen(text), &p, err, sizeof err), EB_OK);
    eb_pattern_free(p);
    p = NULL;
    free(text);

    text = nested_pattern(EB_PATTERN_MAX_DEPTH + 1, "a");
    assert_int_equal(eb_pattern_compile(text, strlen(text), &p, err, sizeof err), EB_EINVAL);
    assert_null(p);
    assert_string_equal(err, "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a: pattern depth exceeds 16");
    free(text);

    /* A very deep pattern (within the size cap) is refused without deep
     * recursion. */
    text = nested_pattern(500, "detail");
    assert_int_equal(eb_pattern_compile(text, strlen(text), &p, err, sizeof err), EB_EINVAL);
    assert_non_null(strstr(err, "detail: pattern depth exceeds 16"));
    free(text);

    /* Each $or alternative is one level deeper. */
    {
        char buf[1024];
        size_t len = 0;

        for (int i = 1; i < EB_PATTERN_MAX_DEPTH + 1; i++)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "{\"$or\":[");
        len += (size_t)snprintf(buf + len, sizeof buf - len, "{\"x\":[1]}");
        for (int i = 1; i < EB_PATTERN_MAX_DEPTH + 1; i++)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "]}");
        assert_int_equal(eb_pattern_compile(buf, len, &p, err, sizeof err), EB_EINVAL);
        assert_non_null(strstr(err, "$or[0]: pattern depth exceeds 16"));
    }
}

static void test_cap_size(void **state)
{
    char text[EB_PATTERN_MAX_BYTES + 2];
    const char *body = "{\"x\":[\"v\"]}";
    eb_pattern *p = NULL;
    char err[256];

    (void)state;
    memset(text, ' ', sizeof text);
    memcpy(text, body, strlen(body));
    assert_int_equal(eb_pattern_compile(text, EB_PATTERN_MAX_BYTES, &p, err, sizeof err), EB_OK);
    eb_pattern_free(p);
    p = NULL;
    assert_int_equal(eb_pattern_compile(text, EB_PATTERN_MAX_BYTES + 1, &p, err, sizeof err),
                     EB_EINVAL);
    assert_null(p);
    assert_string_equal(err, "pattern: 8193 bytes exceeds the limit of 8192");
}

/* Builds {"x":[1,1,...]} with n values, plus extra text before the close. */
static char *values_pattern(size_t n, const char *extra)
{
    size_t cap = n * 2 + strlen(extra) + 32, len = 0;
    char *s = malloc(cap);

    assert_non_null(s);
    len += (size_t)snprintf(s, cap, "{\"x\":[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, i ? ",1" : "1");
    snprintf(s + len, cap - len, "]%s}", extra);
    return s;
}

static void test_cap_values(void **state)
{
    eb_pattern *p = NULL;
    char err[256];
    char *text;

    (void)state;
    text = values_pattern(EB_PATTERN_MAX_VALUES, "");
    assert_int_equal(eb_pattern_compile(text, strlen(text), &p, err, sizeof err), EB_OK);
    eb_pattern_free(p);
    p = NULL;
    free(text);

    text = values_pattern(EB_PATTERN_MAX_VALUES + 1, "");
    assert_int_equal(eb_pattern_compile(text, strlen(text), &p, err, sizeof err), EB_EINVAL);
    assert_string_equal(err, "x[1024]: pattern has more than 1024 values");
    free(text);

    /* Values are counted across fields and inside anything-but lists. */
    text = values_pattern(EB_PATTERN_MAX_VALUES - 2, ",\"y\":[{\"anything-but\":[1,2]}]");
    assert_int_equal(eb_pattern_compile(text, strlen(text), &p, err, sizeof err), EB_OK);
    eb_pattern_free(p);
    p = NULL;
    free(text);
    text = values_pattern(EB_PATTERN_MAX_VALUES - 2, ",\"y\":[{\"anything-but\":[1,2,3]}]");
    assert_int_equal(eb_pattern_compile(text, strlen(text), &p, err, sizeof err), EB_EINVAL);
    assert_string_equal(err, "y[0]: pattern has more than 1024 values");
    free(text);
}

static void test_cap_wildcard(void **state)
{
    char text[256], stars[64];
    size_t n = 0;
    eb_pattern *p = NULL;
    char err[256];
    json_t *ev;

    (void)state;
    for (int i = 0; i < EB_PATTERN_MAX_WILDCARDS; i++) {
        stars[n++] = 'a';
        stars[n++] = '*';
    }
    stars[n] = '\0';
    snprintf(text, sizeof text, "{\"s\":[{\"wildcard\":\"%s\"}]}", stars);
    assert_int_equal(eb_pattern_compile(text, strlen(text), &p, err, sizeof err), EB_OK);
    ev = json_pack("{s:s}", "s", "aaaaaaaaaaaaaaaaxyz");
    assert_true(eb_pattern_match(p, ev));
    json_decref(ev);
    ev = json_pack("{s:s}", "s", "aaaaaaaaaaaaaaa");
    assert_false(eb_pattern_match(p, ev));
    json_decref(ev);
    eb_pattern_free(p);
    p = NULL;

    snprintf(text, sizeof text, "{\"s\":[{\"wildcard\":\"%sa*\"}]}", stars);
    assert_int_equal(eb_pattern_compile(text, strlen(text), &p, err, sizeof err), EB_EINVAL);
    assert_string_equal(err, "s[0]: wildcard has more than 16 '*'");

    /* Escaped stars are literals and do not count. */
    snprintf(text, sizeof text, "{\"s\":[{\"wildcard\":\"%s\\\\*\\\\*\"}]}", stars);
    assert_int_equal(eb_pattern_compile(text, strlen(text), &p, err, sizeof err), EB_OK);
    eb_pattern_free(p);
}

static void test_compile_contract(void **state)
{
    eb_pattern *sentinel = (eb_pattern *)(uintptr_t)0x1;
    eb_pattern *p = sentinel;
    char err[10];
    const char *text = "{\"a\":[\"x\"]}trailing";

    (void)state;
    /* On failure *out is untouched and a short error buffer is truncated. */
    assert_int_equal(eb_pattern_compile("{\"a\":1}", 7, &p, err, sizeof err), EB_EINVAL);
    assert_ptr_equal(p, sentinel);
    assert_int_equal(strlen(err), sizeof err - 1);
    /* The error buffer is optional. */
    assert_int_equal(eb_pattern_compile("{\"a\":1}", 7, &p, NULL, 0), EB_EINVAL);
    assert_int_equal(eb_pattern_compile(NULL, 0, &p, err, sizeof err), EB_EINVAL);
    assert_ptr_equal(p, sentinel);
    /* Only len bytes are read. */
    p = NULL;
    assert_int_equal(eb_pattern_compile(text, 11, &p, NULL, 0), EB_OK);
    eb_pattern_free(p);
    p = NULL;
    assert_int_equal(eb_pattern_compile(text, strlen(text), &p, NULL, 0), EB_EINVAL);
    /* An embedded NUL is refused. */
    assert_int_equal(eb_pattern_compile("{\"a\":[\"\0\"]}", 11, &p, NULL, 0), EB_EINVAL);
    assert_null(p);
    eb_pattern_free(NULL);
}

/* Arrays nested in arrays are flattened to a bounded depth. */
static void test_deep_event_arrays(void **state)
{
    eb_pattern *p = NULL;
    json_t *ev, *inner;

    (void)state;
    assert_int_equal(compile_q("{'x':['a']}", &p, NULL, 0), EB_OK);
    inner = json_pack("[s]", "a");
    for (int i = 0; i < 3; i++)
        inner = json_pack("[o]", inner);
    ev = json_pack("{s:o}", "x", inner);
    assert_true(eb_pattern_match(p, ev));
    json_decref(ev);

    inner = json_pack("[s]", "a");
    for (int i = 0; i < 100; i++)
        inner = json_pack("[o]", inner);
    ev = json_pack("{s:o}", "x", inner);
    assert_false(eb_pattern_match(p, ev));
    json_decref(ev);
    eb_pattern_free(p);
}

/* Every prefix of every valid pattern either compiles or fails cleanly;
 * run under the sanitizers or valgrind this catches reads out of bounds. */
static void test_truncated_patterns(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof match_cases / sizeof match_cases[0]; i++) {
        char *text = json_of(match_cases[i].pattern);
        size_t len = strlen(text);

        for (size_t cut = 0; cut < len; cut++) {
            char *copy = malloc(cut + 1);
            eb_pattern *p = NULL;
            char err[64];
            eb_status st;

            assert_non_null(copy);
            memcpy(copy, text, cut);
            st = eb_pattern_compile(copy, cut, &p, err, sizeof err);
            assert_true(st == EB_OK || st == EB_EINVAL);
            eb_pattern_free(p);
            free(copy);
        }
        free(text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_table),
        cmocka_unit_test(test_invalid_table),
        cmocka_unit_test(test_explain_table),
        cmocka_unit_test(test_explain_truncates),
        cmocka_unit_test(test_cap_depth),
        cmocka_unit_test(test_cap_size),
        cmocka_unit_test(test_cap_values),
        cmocka_unit_test(test_cap_wildcard),
        cmocka_unit_test(test_compile_contract),
        cmocka_unit_test(test_deep_event_arrays),
        cmocka_unit_test(test_truncated_patterns),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
