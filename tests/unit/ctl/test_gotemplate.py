"""The go-template subset: Go's output for what people write, clear errors for the rest."""

import pytest

from calico.ctl.gotemplate import TemplateError, render

POOLS = {"kind": "IPPoolList", "apiVersion": "projectcalico.org/v3",
         "metadata": {"resourceVersion": "7"},
         "items": [{"kind": "IPPool", "metadata": {"name": "a", "labels": {"z": "1", "b": "2"}},
                    "spec": {"cidr": "10.0.0.0/16", "natOutgoing": True, "order": 1e6,
                             "nets": ["x", "y"]}},
                   {"kind": "IPPool", "metadata": {"name": "b"},
                    "spec": {"cidr": "fd00::/64", "blockSize": 122}}]}


@pytest.mark.parametrize("template, want", [
    ('{{range .items}}{{.metadata.name}}{{"\\n"}}{{end}}', "a\nb\n"),
    ("{{.metadata.resourceVersion}}", "7"),
    ("{{range .}}{{.kind}}{{end}}", "IPPoolList"),
    ("{{range .Items}}{{.ObjectMeta.Name}}:{{.Spec.CIDR}} {{end}}", "a:10.0.0.0/16 b:fd00::/64 "),
    ("{{range .items}}{{if .spec.natOutgoing}}nat{{else if .spec.blockSize}}bs{{else}}-{{end}}"
     "{{end}}", "natbs"),
    ("{{range .items}}{{.spec.order}}|{{end}}", "1e+06|<no value>|"),
    ("{{range .items}}{{.spec.nets}};{{end}}", "[x y];<no value>;"),
    ("{{with (index .items 0)}}x{{end}}", None),
    ("{{range .items}}{{range $k := .metadata.labels}}{{end}}{{end}}", None),
    ("{{range .items}}{{join .spec.nets \",\"}}.{{end}}", "x,y.."),
    ("{{range .items}}{{.metadata.labels}} {{end}}", "map[b:2 z:1] <no value> "),
    ("{{range .items}}{{if eq .spec.ipipMode \"\"}}never{{end}}{{end}}", "nevernever"),
    ("{{range .items}}{{len .spec.cidr}} {{end}}", "11 9 "),
    ("{{- range .items -}}\n  {{ .metadata.name }}\n{{- end }}", "ab"),
    ("{{/* a comment */}}ok", "ok"),
    ("{{range .items}}{{.Name}}{{end}}", "ab"),
    ('{{range .items}}{{printf "%-4s|%3d|%q\\n" .metadata.name .spec.blockSize .spec.cidr}}'
     "{{end}}", 'a   |%!d(<no value>)|"10.0.0.0/16"\nb   |122|"fd00::/64"\n'),
])
def test_templates(template, want):
    if want is None:
        with pytest.raises(TemplateError, match="unsupported template syntax"):
            render(template, [POOLS])
    else:
        assert render(template, [POOLS]) == want


@pytest.mark.parametrize("template, why", [
    ("{{html .kind}}", 'function "html" not defined'),
    ("{{range .items}}", "without {{end}}"),
    ("{{end}}", "unexpected {{end}}"),
    ("{{.items.metadata}}", "can't evaluate field metadata in type slice"),
])
def test_errors_name_the_problem(template, why):
    with pytest.raises(TemplateError, match=why.replace("{", r"\{").replace("}", r"\}")):
        render(template, [POOLS])


def test_several_objects_need_range():
    with pytest.raises(TemplateError, match="list of 2 objects"):
        render("{{.kind}}", [POOLS, POOLS])
    assert render("{{range .}}{{.kind}} {{end}}", [POOLS, POOLS]) == "IPPoolList IPPoolList "


def test_go_number_forms():
    """Floats as Go writes them: fmt's %v and yaml.v2 both use strconv's shortest 'g'."""
    from calico.ctl.goformat import go_float, to_json, to_yaml

    assert [go_float(x) for x in (1e6, 1234567.5, 123456.5, 0.5, 1e-5, 0.0001, 100.0)] == \
        ["1e+06", "1.2345675e+06", "123456.5", "0.5", "1e-05", "0.0001", "100"]
    assert to_yaml({"a": 1234567.5, "b": 2.0, "c": 0.25}) == "a: 1.2345675e+06\nb: 2\nc: 0.25\n"
    assert to_json({"a": 2.0, "b": 0.25}) == '{\n  "a": 2,\n  "b": 0.25\n}\n'
