import sys,csv
pre=sys.argv[1]
k={}
for r in csv.DictReader(open(pre+'.kernel.csv')):
    k[(int(r['src']),int(r['ctime']))]=int(r['latency'])
w={}
for r in csv.DictReader(open(pre+'.wn.csv')):
    w[(int(r['src']),int(r['ctime']))]=int(r['latency'])
assert set(k)==set(w), (len(k),len(w))
diff=[key for key in k if k[key]!=w[key]]
n=len(k)
mk=sum(k.values())/n; mw=sum(w.values())/n
first=min(diff,key=lambda x:(x[1],x[0])) if diff else None
print(f"{pre}: packets {n} identical {n-len(diff)} differ {len(diff)} mean kernel {mk:.3f} wafernoc {mw:.3f}" + (f" first differing (src,ctime) {first}: k {k[first]} w {w[first]}" if diff else ""))
