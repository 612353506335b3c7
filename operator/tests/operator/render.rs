//! `hookplane-operator render` on the examples, and the CRD's source-app enum against the
//! catalog of `hookplane-sources`.

use hookplane_crds::{SOURCE_APPS, manifest};
use hookplane_operator::render::render;

use crate::support::{example_documents, settings};

#[test]
fn the_examples_render_into_five_objects_without_problems() {
    let (objects, problems) = render(&example_documents(), &settings()).unwrap();
    assert_eq!(problems, Vec::<String>::new());
    let kinds: Vec<_> = objects
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap hookplane-shop-to-erp-config",
            "Service hookplane-shop-to-erp-receiver",
            "Deployment hookplane-shop-to-erp-receiver",
            "PodDisruptionBudget hookplane-shop-to-erp-receiver",
            "Deployment hookplane-shop-to-erp-worker",
        ]
    );
    assert_eq!(
        objects[4]["spec"]["replicas"], 1,
        "an empty backlog runs minReplicas workers"
    );
    assert!(
        !serde_json::to_string(&objects)
            .unwrap()
            .contains(crate::support::DATABASE_URL),
        "the database URL is never printed"
    );

    let routed = hookplane_operator::settings::Settings {
        receiver_ingress: Some(hookplane_operator::build::ReceiverIngress::default()),
        ..settings()
    };
    let (objects, _) = render(&example_documents(), &routed).unwrap();
    assert_eq!(objects.len(), 6);
    assert_eq!(objects[5]["kind"], "Ingress");
}

#[test]
fn rendering_reports_what_would_not_run() {
    let documents: Vec<_> = example_documents()
        .into_iter()
        .filter(|d| d["metadata"]["name"] != "partner-hooks")
        .collect();
    let (objects, problems) = render(&documents, &settings()).unwrap();
    assert_eq!(objects.len(), 5);
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].starts_with("Touchpoint partner-shipments: SecretNotFound"),
        "{problems:?}"
    );
}

#[test]
fn the_crd_accepts_exactly_the_catalog_schemes() {
    let mut accepted: Vec<&str> = hookplane_sources::catalog()
        .iter()
        .flat_map(|app| app.info().schemes.to_vec())
        .collect();
    accepted.sort_unstable();
    accepted.dedup();
    let mut enumerated = hookplane_crds::VERIFICATION_SCHEMES.to_vec();
    enumerated.sort_unstable();
    assert_eq!(
        enumerated, accepted,
        "update VERIFICATION_SCHEMES in crds when an app's schemes change"
    );
}

#[test]
fn the_crd_accepts_exactly_the_catalog_apps() {
    let catalog: Vec<&str> = hookplane_sources::catalog()
        .iter()
        .map(|app| app.id())
        .collect();
    let mut enumerated = SOURCE_APPS.to_vec();
    let mut sorted = catalog.clone();
    enumerated.sort();
    sorted.sort();
    assert_eq!(
        enumerated, sorted,
        "update SOURCE_APPS in crds when the catalog changes"
    );
    let yaml = manifest::yaml();
    for app in catalog {
        assert!(
            yaml.contains(&format!("- {app}\n")),
            "{app} is not in the CRD's enum"
        );
    }
}
