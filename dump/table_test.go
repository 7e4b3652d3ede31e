package dump_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kdisc/kdisc/dump"
)

func TestWriteTable(t *testing.T) {
	d := dump.Dump{Endpoints: []dump.Cluster{{Endpoints: []dump.Entry{
		{Name: "default/web", Value: `{"http":[{"host":"10.5.10.109","port":8080,"weight":50},{"host":"10.5.10.110","port":8080,"weight":50}],"admin":[{"host":"10.5.10.109","port":9000,"weight":50}]}`},
		{Name: "default/kubernetes", Value: `{"https":[{"host":"172.18.164.170","port":6443,"weight":50}]}`},
		{Name: "prod/many", Value: `{"80":[{"host":"10.0.0.1","port":80,"weight":50},{"host":"10.0.0.2","port":80,"weight":50},{"host":"10.0.0.3","port":80,"weight":50},{"host":"10.0.0.4","port":80,"weight":50},{"host":"fd00::5","port":80,"weight":50}]}`},
	}}}}
	var b strings.Builder
	assert.NoError(t, dump.WriteTable(&b, d))
	assert.Equal(t, ""+
		"SERVICE             PORT   NODES  HOSTS\n"+
		"default/kubernetes  https  1      172.18.164.170:6443\n"+
		"default/web         admin  1      10.5.10.109:9000\n"+
		"default/web         http   2      10.5.10.109:8080 10.5.10.110:8080\n"+
		"prod/many           80     5      10.0.0.1:80 10.0.0.2:80 10.0.0.3:80 (+2 more)\n", b.String())
}

func TestWriteTableMulti(t *testing.T) {
	d := dump.Dump{Endpoints: []dump.Cluster{
		{ID: "second", Endpoints: []dump.Entry{{Name: "default/web", Value: `{"http":[{"host":"10.2.0.1","port":80,"weight":50}]}`}}},
		{ID: "first", Endpoints: []dump.Entry{{Name: "default/web", Value: `{"http":[{"host":"10.1.0.1","port":80,"weight":50}]}`}}},
		{ID: "empty", Endpoints: []dump.Entry{}},
	}}
	var b strings.Builder
	assert.NoError(t, dump.WriteTable(&b, d))
	assert.Equal(t, ""+
		"SERVICE             PORT  NODES  HOSTS\n"+
		"first/default/web   http  1      10.1.0.1:80\n"+
		"second/default/web  http  1      10.2.0.1:80\n", b.String())

	b.Reset()
	assert.NoError(t, dump.WriteTable(&b, dump.Dump{}))
	assert.Equal(t, "SERVICE  PORT  NODES  HOSTS\n", b.String())
}
