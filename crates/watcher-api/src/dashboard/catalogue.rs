//! The pages about what watcherd knows and runs on: goals and their
//! strategies, audit templates, services, and the cluster model (hosts
//! with their instances and usage).

use super::pages::{state_badge, when};
use maud::{html, Markup};
use watcher_core::{AuditTemplate, Goal, ServiceRecord, Strategy};
use watcher_decision::model::ClusterModel;
use watcher_store::{AuditFilter, ListQuery, Store, StoreError};

pub struct Goals {
    goals: Vec<Goal>,
    strategies: Vec<Strategy>,
}

impl Goals {
    pub async fn load(store: &Store) -> Result<Goals, StoreError> {
        Ok(Goals {
            goals: store.list_goals(ListQuery::default()).await?,
            strategies: store.list_strategies(None, ListQuery::default()).await?,
        })
    }

    pub fn main(&self) -> Markup {
        html! {
            h1 { "Goals and strategies" }
            @for g in &self.goals {
                section {
                    h2 { (g.display_name) " " small { code { (g.name) } } }
                    ul { @for s in self.strategies.iter().filter(|s| s.goal_id == g.id) {
                        li { (s.display_name) " " code { (s.name) } " "
                             a href={"/dashboard/audits/new?strategy=" (s.name)} { "audit with it" } }
                    } }
                }
            }
        }
    }
}

pub struct Templates {
    templates: Vec<AuditTemplate>,
}

impl Templates {
    pub async fn load(store: &Store) -> Result<Templates, StoreError> {
        Ok(Templates {
            templates: store
                .list_audit_templates(AuditFilter::default(), ListQuery::default())
                .await?,
        })
    }

    pub fn main(&self) -> Markup {
        html! {
            h1 { "Audit templates" }
            @if self.templates.is_empty() { p .empty { "No template." } }
            @else {
                div .scroll { table {
                    thead { tr { th { "Name" } th { "Goal" } th { "Strategy" } th { "Scope" } th { "Description" } } }
                    tbody { @for t in &self.templates {
                        tr { td { (t.name) } td { (t.goal_name) } td { (t.strategy_name.as_deref().unwrap_or("")) }
                             td { code { (t.scope.to_string()) } } td { (t.description.as_deref().unwrap_or("")) } }
                    } }
                } }
            }
        }
    }
}

pub struct Services {
    services: Vec<ServiceRecord>,
}

impl Services {
    pub async fn load(store: &Store) -> Result<Services, StoreError> {
        Ok(Services {
            services: store.list_services(1000, None, false).await?,
        })
    }

    pub fn main(&self) -> Markup {
        html! {
            h1 { "Services" }
            div .scroll { table {
                thead { tr { th { "Name" } th { "Host" } th { "Status" } th { "Last seen" } } }
                tbody { @for s in &self.services {
                    tr { td { (s.name) } td { (s.host) }
                         td { (state_badge(crate::views::service_status(s))) }
                         td { @if let Some(t) = &s.last_seen_up { (when(t)) } } }
                } }
            } }
        }
    }
}

/// The cluster model as strategies see it, read from the cloud.
pub fn cluster(model: &ClusterModel) -> Markup {
    html! {
        h1 { "Cluster" }
        @for n in &model.nodes {
            @let instances: Vec<_> = model.instances.iter().filter(|i| i.host == n.name).collect();
            @let used = instances.iter().filter_map(|i| model.flavors.get(&i.flavor)).fold((0u64, 0u64), |(c, r), f| (c + u64::from(f.vcpus), r + f.ram_mb));
            section {
                h2 { (n.name) " "
                    (state_badge(if n.service_enabled { "enabled" } else { "disabled" })) " "
                    (state_badge(if n.service_up { "up" } else { "down" })) }
                p { (used.0) " of " (n.vcpus.capacity()) " vCPUs, " (used.1) " of " (n.ram_mb.capacity()) " MB allocated; zone " (n.availability_zone)
                    @if let Some(r) = &n.disabled_reason { "; disabled: " (r) } }
                @if instances.is_empty() { p .empty { "No instance." } }
                @else { ul { @for i in &instances {
                    li { (i.name) " " code { (i.uuid) } " " (i.flavor) " " (state_badge(&i.status)) }
                } } }
            }
        }
    }
}
